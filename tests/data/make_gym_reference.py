"""Writes gym_reference.json: returns, step counts and normaliser statistics of GymObjective
for fixed policies and seeds, produced by the rollout code that predates the episode
scheduler (all K×E episodes stepped together until the longest ended). The scheduler must
reproduce them exactly. Run: ``python tests/data/make_gym_reference.py``."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from zoopt.objectives import GymObjective

# a linear CartPole controller that balances: push toward the pole's lean
BALANCING = [0.0, 0.0, 0.0, 0.0, 0.1, 0.5, 10.0, 2.0, 0.0, 0.0]

CASES = [
    # (env id, vectorization, K, E, parameter scale, max_episode_steps, normalize)
    ("CartPole-v1", "native", 6, 3, 1.0, None, False),
    ("CartPole-v1", "sync", 6, 3, 1.0, None, False),
    ("CartPole-v1", "torch", 6, 3, 1.0, None, False),
    ("CartPole-v1", "native", 5, 2, 1.0, 60, True),
    ("CartPole-v1", "torch", 5, 2, 1.0, 60, True),
    ("Acrobot-v1", "sync", 4, 2, 3.0, 80, True),
    ("MountainCar-v0", "torch", 4, 2, 3.0, None, False),
    ("MountainCar-v0", "sync", 4, 2, 3.0, 120, False),
]


def run(env_id, vectorization, k, e, scale, max_steps, normalize):
    obj = GymObjective(
        env_id,
        episodes=e,
        vectorization=vectorization,
        max_episode_steps=max_steps,
        normalize_observations=normalize,
    )
    X = scale * torch.randn(k, obj.dim, generator=torch.Generator().manual_seed(k + e))
    if env_id == "CartPole-v1":  # mixed lengths: near a balancing controller, and random
        X[: k // 2] = torch.tensor(BALANCING) + 0.3 * X[: k // 2]
    if env_id == "MountainCar-v0":
        X[: k // 2, [1, 5]] = torch.tensor([-100.0, 100.0])  # some reach the flag
    out = {"returns": [], "losses": []}
    for seed in (3, 11):
        out["losses"].append(obj.evaluate(X, seed=seed).tolist())
        out["returns"].append(obj.episode_returns(X, seed=seed).tolist())
    stats = obj.observation_statistics
    out["env_steps"] = obj.env_steps
    out["episodes"] = obj.episodes_played
    out["stats"] = {"count": stats.count, "mean": stats.mean.tolist(), "m2": stats.m2.tolist()}
    out["X"] = X.tolist()
    return out


if __name__ == "__main__":
    ref = [{"case": list(c), **run(*c)} for c in CASES]
    path = Path(__file__).with_name("gym_reference.json")
    path.write_text(json.dumps(ref, indent=1) + "\n")
    print(f"wrote {path} ({len(ref)} cases)")
