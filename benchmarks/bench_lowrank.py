"""Low-rank ES on modules with millions of parameters (zoopt.lowrank): speed, memory, learning.

Three parts, every speed a ratio to a reference measured in the same run (interleaved,
best of ``--repeats``), every memory a peak resident size measured in a fresh subprocess
(the process's own size after building the model subtracted). Memory is measured twice: on
the first call, which also counts library code and allocator arenas touched for the first
time, and on a second call ("warm", the figure per step of a long run). The subprocess runs
with glibc's ``MALLOC_MMAP_THRESHOLD_`` at 64 KiB, so that a freed tensor's pages go back
to the system at once and the peak resident size follows the live tensors.

(a) ``forward``: the population forward of K members at rank r against plain inference of
    the same model on the same K·B inputs (the limit), for an MLP of about 3M parameters and
    a transformer of about 10M (built from nn.Embedding, nn.Linear and nn.LayerNorm), K = 64,
    r = 1 and 4. Prints the throughput ratio and the peak extra memory of both, with the
    bound "inference activations + K·r·(m+n) floats per matrix".
(b) ``fullrank``: one ES step (ask → evaluate → tell) at the same K with full-rank draws
    against low-rank draws: seconds per step and peak memory; the transformer's full-rank
    noise alone is K·D floats, reported without running it.
(c) ``digits``: held-out accuracy on scikit-learn's digits of an MLP with ≥ 1M parameters
    (64-1024-1024-10), low-rank ES against full-rank ES with the same population, steps and
    step size, 3 seeds: accuracy, evaluations and wall time.

(c') ``budget``: low-rank ES run longer (``--budget-steps``), its held-out accuracy every
    20 steps, to read off the evaluations it needs to match full-rank ES's accuracy of (c).

    python benchmarks/bench_lowrank.py forward fullrank digits budget [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------
class Block(nn.Module):
    """A pre-norm transformer block from nn.Linear and nn.LayerNorm (causal attention)."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, n, d))
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class Transformer(nn.Module):
    """Token and position embeddings, ``layers`` blocks, a linear head over the vocabulary."""

    def __init__(
        self, vocab: int = 4096, d: int = 256, layers: int = 10, heads: int = 4, length: int = 64
    ):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(length, d)
        self.blocks = nn.Sequential(*[Block(d, heads) for _ in range(layers)])
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, idx):
        pos = torch.arange(idx.shape[1], device=idx.device).expand_as(idx)
        return self.head(self.norm(self.blocks(self.tok(idx) + self.pos(pos))))


def mlp(widths: list[int]) -> nn.Module:
    layers: list[nn.Module] = []
    for a, b in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def build(name: str) -> tuple[nn.Module, torch.Tensor]:
    """The model and one batch B of its inputs."""
    torch.manual_seed(0)
    if name == "mlp":  # 3.1M parameters
        return mlp([256, 1536, 1536, 256]), torch.randn(8, 256)
    model = Transformer()  # 10.2M parameters
    return model, torch.randint(0, 4096, (1, 16))


def numel(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def population(model: nn.Module, k: int, rank: int | None, seed: int = 0):
    from zoopt.lowrank import LowRankPopulation, LowRankStructure
    from zoopt.population import GaussianPopulation

    theta = nn.utils.parameters_to_vector(model.parameters()).detach().clone()
    if rank is None:
        return GaussianPopulation(theta, 0.01, seed, k, True)
    structure = LowRankStructure.from_module(model, rank)
    return LowRankPopulation(theta, 0.01, seed, k, True, structure=structure)


def factor_floats(model: nn.Module, k: int, rank: int) -> int:
    """K·r·(m + n) summed over the weight matrices."""
    from zoopt.lowrank import LowRankStructure

    s = LowRankStructure.from_module(model, rank)
    return k * sum(rank * (t.rows + t.cols) for t in s.tensors if t.lowrank)


# ---------------------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------------------
def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def reset_peak() -> None:
    """Reset the process's peak resident size (VmHWM; Linux ≥ 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak() -> int:
    """The peak resident size since :func:`reset_peak`, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def memory_probe(args: argparse.Namespace) -> None:
    """Run in a subprocess: print the peak memory above the process's size before the call."""
    from zoopt.population_forward import population_forward

    torch.set_num_threads(args.threads)
    model, x = build(args.model)
    k = args.population
    members = population(model, k, args.rank or 1).members()  # θ's copy: not the forward's

    def call() -> None:
        with torch.no_grad():
            if args.mode == "inference":
                inputs = x.unsqueeze(0).expand(k, *x.shape).reshape(-1, *x.shape[1:])
                model.eval()(inputs)
            elif args.mode == "population":
                population_forward(model, members, x)
            else:  # one ES step of the objective below, full rank or low rank
                es_step(model, x, k, None if args.rank == 0 else args.rank)

    extra = []
    for _ in range(2):  # the first call, then a warm one
        before = rss()
        reset_peak()
        call()
        extra.append(peak() - before)
    print(json.dumps({"first": extra[0], "warm": extra[1]}))


def subprocess_memory(model: str, mode: str, k: int, rank: int, threads: int) -> dict:
    """``{"first": bytes, "warm": bytes}``: the peak extra memory of the first and the
    second call (-1 each if the subprocess failed)."""
    cmd = [
        sys.executable,
        __file__,
        "_memory",
        "--model",
        model,
        "--mode",
        mode,
        "--population",
        str(k),
        "--rank",
        str(rank),
        "--threads",
        str(threads),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if out.returncode != 0:
        return {"first": -1, "warm": -1}
    return json.loads(out.stdout.strip().splitlines()[-1])


def es_step(model: nn.Module, x: torch.Tensor, k: int, rank: int | None) -> None:
    """One ES step on a fixed random target: ask → evaluate → tell."""
    import zoopt

    target = torch.zeros(())
    forward = zoopt.batched_forward(model)

    def loss(X):
        return (forward(X, x).float().mean(dim=tuple(range(1, 3))) - target) ** 2

    m = zoopt.Minimizer(
        loss,
        model,
        estimator="es",
        rank=rank,
        population=k,
        steps=1,
        sigma=0.01,
        evaluate_center=False,
        progress=False,
    )
    m.step()


def timed(fn, calls: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def mib(b: float) -> str:
    return f"{b / 2**20:,.1f} MiB"


def mib_pair(mem: dict) -> str:
    """A subprocess's warm figure, then the first call's in brackets."""
    return f"{mib(mem['warm'])} ({mib(mem['first'])})"


def part_forward(args: argparse.Namespace) -> None:
    from zoopt.population_forward import population_forward

    k = args.population
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    print(f"(a) population forward vs plain inference on the same K·B inputs, K = {k}, on {dev}")
    print(
        "| model | D | r | inference s | population s | throughput ratio | extra memory "
        "inference, warm (first call) | extra memory population, warm (first call) | bound: "
        "inference + K·r·(m+n), warm (first call) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in ("mlp", "transformer"):
        model, x = build(name)
        model.eval().to(dev)
        x = x.to(dev)
        inputs = x.unsqueeze(0).expand(k, *x.shape).reshape(-1, *x.shape[1:])
        pops = {r: population(model, k, r).members().to(dev) for r in (1, 4)}
        fns = {"inference": lambda m=model, i=inputs: (m(i), sync())}
        for r, members in pops.items():
            fns[r] = lambda m=model, ms=members, x=x: (population_forward(m, ms, x), sync())
        best = {key: math.inf for key in fns}
        with torch.no_grad():
            for f in fns.values():  # warm-up
                f()
            for _ in range(args.repeats):  # interleaved
                for key, f in fns.items():
                    best[key] = min(best[key], timed(f))
        if dev.type != "cpu":  # resident memory says nothing about the device's
            for r in (1, 4):
                print(
                    f"| {name} | {numel(model) / 1e6:.1f}M | {r} | {best['inference']:.4f} | "
                    f"{best[r]:.4f} | {best['inference'] / best[r]:.2f}× | | | |",
                    flush=True,
                )
            continue
        mem_inf = subprocess_memory(name, "inference", k, 1, args.threads)
        for r in (1, 4):
            mem_pop = subprocess_memory(name, "population", k, r, args.threads)
            bound = {key: mem_inf[key] + 4 * factor_floats(model, k, r) for key in mem_inf}
            print(
                f"| {name} | {numel(model) / 1e6:.1f}M | {r} | {best['inference']:.3f} | "
                f"{best[r]:.3f} | {best['inference'] / best[r]:.2f}× | {mib_pair(mem_inf)} | "
                f"{mib_pair(mem_pop)} | {mib_pair(bound)} |",
                flush=True,
            )


def part_fullrank(args: argparse.Namespace) -> None:
    k = args.population
    print(f"\n(b) one ES step (ask → evaluate → tell), full-rank vs low-rank draws, K = {k}")
    print("| model | D | draws | s per step | peak extra memory, warm (first call) |")
    print("|---|---|---|---|---|")
    model, x = build("mlp")
    fns = {
        "full rank": lambda: es_step(model, x, k, None),
        "rank 4": lambda: es_step(model, x, k, 4),
    }
    best = {key: math.inf for key in fns}
    for _ in range(args.repeats):
        for key, f in fns.items():
            best[key] = min(best[key], timed(f))
    for key in fns:
        mem = subprocess_memory("mlp", "step", k, 0 if key == "full rank" else 4, args.threads)
        print(f"| mlp | {numel(model) / 1e6:.1f}M | {key} | {best[key]:.2f} | {mib_pair(mem)} |")
    print(f"ratio full rank / rank 4: {best['full rank'] / best['rank 4']:.1f}× time")
    t, _ = build("transformer")
    d = numel(t)
    print(
        f"transformer D = {d / 1e6:.1f}M: full-rank noise alone is K·D·4 bytes = "
        f"{k * d * 4 / 1e9:.1f} GB (K/2 antithetic draws: {k * d * 2 / 1e9:.1f} GB) and "
        f"the rows θ + σεᵢ as much again; rank 4 factors: "
        f"{4 * factor_floats(t, k, 4) / 1e6:.0f} MB"
    )


def seed_range(args: argparse.Namespace) -> range:
    """The seeds of parts (c) and (c'): ``--seeds`` of them from ``--first-seed``."""
    return range(args.first_seed, args.first_seed + args.seeds)


def part_digits(args: argparse.Namespace) -> None:
    import zoopt
    from zoopt.datasets import load_classification
    from zoopt.objectives import SupervisedObjective

    X_tr, y_tr, X_te, y_te = load_classification("digits")
    print(
        f"\n(c) digits, MLP 64-1024-1024-10, K = {args.digits_population}, "
        f"{args.digits_steps} steps, minibatch {args.batch}, "
        f"seeds {args.first_seed}..{args.first_seed + args.seeds - 1}"
    )
    print("| draws | seed | test accuracy | evaluations | seconds |")
    print("|---|---|---|---|---|")
    results: dict[str, list] = {}
    for seed in seed_range(args):
        for rank in (None, 4):  # interleaved, same seed, same initial model
            torch.manual_seed(seed)
            model = mlp([64, 1024, 1024, 10])
            obj = SupervisedObjective(model, X_tr, y_tr, batch_size=args.batch)
            t0 = time.perf_counter()
            r = zoopt.minimize(
                obj,
                model,
                estimator="es",
                rank=rank,
                seed=seed,
                population=args.digits_population,
                sigma=0.02,
                shaping="centered_ranks",
                lr=0.01,
                steps=args.digits_steps,
                evaluate_center=False,
                progress=False,
            )
            secs = time.perf_counter() - t0
            acc = obj.evaluate_split(r.x, X_te, y_te)["accuracy"]
            key = "full rank" if rank is None else f"rank {rank}"
            results.setdefault(key, []).append((acc, r.evaluations, secs))
            print(f"| {key} | {seed} | {acc:.3f} | {r.evaluations} | {secs:.0f} |", flush=True)
    print("| draws | test accuracy (mean ± sd) | evaluations | seconds (mean) |")
    print("|---|---|---|---|")
    for key, rows in results.items():
        accs = torch.tensor([a for a, _, _ in rows])
        sd = float(accs.std()) if len(rows) > 1 else 0.0
        print(
            f"| {key} | {float(accs.mean()):.3f} ± {sd:.3f} | {rows[0][1]} | "
            f"{sum(s for _, _, s in rows) / len(rows):.0f} |"
        )
    full = sum(s for _, _, s in results["full rank"])
    low = sum(s for _, _, s in results["rank 4"])
    print(f"wall-time ratio rank 4 / full rank: {low / full:.2f}")


def part_budget(args: argparse.Namespace) -> None:
    """Low-rank ES run longer, with its held-out accuracy every 20 steps: how many
    evaluations it needs to reach full-rank ES's accuracy of part (c)."""
    import zoopt
    from zoopt.datasets import load_classification
    from zoopt.objectives import SupervisedObjective

    X_tr, y_tr, X_te, y_te = load_classification("digits")
    k = args.digits_population
    print(
        f"\n(c') digits, rank {args.digits_rank} for {args.budget_steps} steps (K = {k}), "
        "test accuracy every 20 steps"
    )
    print(
        "| seed | "
        + " | ".join(str(s * k) for s in range(20, args.budget_steps + 1, 20))
        + " | seconds |"
    )
    print("|---" * (args.budget_steps // 20 + 2) + "|")
    for seed in seed_range(args):
        torch.manual_seed(seed)
        model = mlp([64, 1024, 1024, 10])
        obj = SupervisedObjective(model, X_tr, y_tr, batch_size=args.batch)
        curve: list[float] = []
        m = zoopt.Minimizer(
            obj,
            model,
            estimator="es",
            rank=args.digits_rank,
            seed=seed,
            population=k,
            sigma=0.02,
            shaping="centered_ranks",
            lr=0.01,
            steps=args.budget_steps,
            evaluate_center=False,
            progress=False,
        )
        t0 = time.perf_counter()
        seconds = 0.0
        while m.step_count < args.budget_steps:
            m.step()
            if m.step_count % 20 == 0:
                seconds += time.perf_counter() - t0
                curve.append(obj.evaluate_split(m.theta, X_te, y_te)["accuracy"])
                t0 = time.perf_counter()
        print(
            f"| {seed} | " + " | ".join(f"{a:.3f}" for a in curve) + f" | {seconds:.0f} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="*", default=["forward", "fullrank", "digits", "budget"])
    parser.add_argument("--population", type=int, default=64, help="K for (a) and (b)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="cpu", help="device of (a)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds of (c) and (c')")
    parser.add_argument("--digits-population", type=int, default=32)
    parser.add_argument("--digits-steps", type=int, default=150)
    parser.add_argument("--batch", type=int, default=128, help="digits minibatch")
    parser.add_argument("--budget-steps", type=int, default=240, help="steps of (c')")
    parser.add_argument("--digits-rank", type=int, default=4, help="rank of (c')")
    # the memory probe's own options (run in a subprocess)
    parser.add_argument("--model", default="mlp")
    parser.add_argument("--mode", default="inference")
    parser.add_argument("--rank", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.parts == ["_memory"]:
        memory_probe(args)
        return
    for part in args.parts:
        parts = {
            "forward": part_forward,
            "fullrank": part_fullrank,
            "digits": part_digits,
            "budget": part_budget,
        }
        parts[part](args)


if __name__ == "__main__":
    main()
