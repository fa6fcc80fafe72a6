"""Fine-tune a Transformer for BLEU: low-rank ES against REINFORCE and against more MLE.

A pre-norm Transformer encoder–decoder (:class:`zoopt.tasks.TransformerSeq2Seq`, about 5.8M
parameters) is trained with maximum likelihood on zoopt's generated translation task
(:mod:`zoopt.tasks.translation`), once, until validation BLEU plateaus (cosine decay over at
most ``--pretrain-steps``, validation every ``--valid-every`` steps, stop after
``--patience`` validations without improvement, the best checkpoint kept); the checkpoint is
cached under ``benchmarks/out/finetune``. From it,
for each seed and the same budget of *sequences* (translations generated, or reference
sentences processed by MLE):

a. ``es`` with ``rank=r`` (EGGROLL low-rank draws, antithetic, centred ranks, Adam) on −BLEU of
   each member's greedy translations of a minibatch: every member's decode runs in one
   population forward (K·B rows); sequences per step = K·B;
b. ``reinforce`` with ``baseline="leave_one_out"`` (RLOO: the baseline of each sample is
   the mean loss of the other samples of the same sentence, Kool et al. 2019 — the group
   baseline of GRPO-style training), M samples per sentence, loss 1 − sentence BLEU/100;
   sequences per step = M·B;
c. more MLE (``gradient`` on the teacher-forced cross-entropy) at the fine-tuning rate;
   sequences per step = B.

Held-out corpus BLEU and exact match (sacrebleu, greedy, test split; ``--eval-split valid``
to tune) are measured every ``--eval-every`` sequences; the table gives mean ± sd over seeds
at the end of the budget and the differences against more MLE, with each method's wall time
(evaluation excluded). A plot of both against sequences and against seconds is written when
matplotlib is installed.

    python benchmarks/bench_finetune.py              # the full benchmark (docs/large_models.md)
    python benchmarks/bench_finetune.py --quick      # a smoke run of about a minute

``--seed S`` runs one seed and ``--methods`` some of the methods (so that runs can go side
by side); ``--merge`` prints the table and draws the plot from their result files;
``--pretrain-only`` fills the cache first (docs/large_models.md gives the exact commands of
the published table).

The seeds share the MLE checkpoint and the data; they differ in the fine-tuning's minibatches,
draws and samples.

``--task countdown`` runs the same comparison on generated Countdown problems
(:mod:`zoopt.tasks.countdown`: reach the target with the given numbers, several correct answers
per problem), scored by a verifier (the share solved) instead of BLEU. MLE pretrains on the
labelled training problems (one reference answer each); ES and REINFORCE draw from the
``prompts`` split, problems whose references the verifier never reads, and a fourth method,
"MLE on new labels", trains on those prompts' references (what labelling them would buy).

    python benchmarks/bench_finetune.py --task countdown --numbers 3 --max-number 30 \
        --prompt-size 10000 --seed S --samples 16 --rl-batch 16 --es-batch 32 \
        --es-lr 1e-4 --budget 32768 --eval-every 4096          # S in 0 1 2, then --merge
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from collections import Counter
from pathlib import Path

import torch

import zoopt
from zoopt.objectives import TranslationObjective
from zoopt.objectives.base import seeded_generator
from zoopt.tasks import TransformerSeq2Seq, make_countdown_task, make_translation_task
from zoopt.tasks.countdown import check_countdown, problem_parts

OUT = Path(__file__).resolve().parent / "out" / "finetune"


def build(args: argparse.Namespace):
    """The task and a freshly initialised model (seeded)."""
    if args.task == "countdown":
        task = make_countdown_task(
            args.train_size,
            seed=0,
            numbers=args.numbers,
            max_number=args.max_number,
            test_size=args.test_size,
            prompt_size=args.prompt_size,
        )
    else:
        task = make_translation_task(
            args.train_size, seed=0, valid_size=200, test_size=args.test_size, max_clauses=1
        )
    torch.manual_seed(0)
    model = TransformerSeq2Seq(
        len(task.src_vocab),
        len(task.tgt_vocab),
        dim=args.dim,
        ff_dim=4 * args.dim,
        encoder_layers=args.layers,
        decoder_layers=args.layers,
    )
    return task, model


def metric_label(args: argparse.Namespace) -> str:
    """The task's score as the tables name it."""
    return "solved %" if args.task == "countdown" else "BLEU"


def held_out(objective: TranslationObjective, x: torch.Tensor, split: str) -> tuple[float, float]:
    """The task's score (corpus BLEU, or the share of Countdown problems solved; 0–100) and
    exact match (% of outputs equal to the reference) of one greedy decode of a whole
    ``split`` at ``x`` ``(D,)``."""
    pairs = objective.task.pairs(split)
    sources, refs = [s for s, _ in pairs], [t for _, t in pairs]
    hyps: list[str] = []
    for start in range(0, len(pairs), 256):
        hyps += objective.translate(x.detach(), sources[start : start + 256])
    exact = 100.0 * sum(h == r for h, r in zip(hyps, refs, strict=True)) / len(refs)
    return objective.task.corpus_score(hyps, sources, refs), exact


def pretrain(task, model, args: argparse.Namespace) -> tuple[torch.Tensor, dict]:
    """MLE with Adam (warm-up, then cosine decay over ``--pretrain-steps``), validation BLEU
    and exact match every ``--valid-every`` steps; stops after ``--patience`` evaluations
    without improvement (or at 100 BLEU) and keeps the best checkpoint. Cached by its
    settings."""
    names = ("train_size", "dim", "layers", "pretrain_steps", "pretrain_lr", "mle_batch")
    names += ("valid_every", "patience")
    if args.task == "countdown":  # (the translation task's cache keys predate the option)
        names += ("task", "prompt_size", "numbers", "max_number")
    key = json.dumps({k: getattr(args, k) for k in names}, sort_keys=True)
    path = OUT / f"mle_{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt"
    if path.exists():
        saved = torch.load(path, weights_only=True)
        print(f"MLE checkpoint from {path.relative_to(OUT.parent.parent)}", flush=True)
        return saved["x"], saved["info"]
    objective = TranslationObjective(model, task, batch_size=args.mle_batch)
    m = zoopt.Minimizer(
        objective,
        objective.flat_parameters(),
        estimator="gradient",
        steps=args.pretrain_steps,
        seed=12345,
        lr=args.pretrain_lr,
        schedule="cosine",
        warmup_steps=min(50, args.pretrain_steps // 5),
        evaluate_center=False,
        progress=False,
    )
    best, best_x, best_step, waited, history = (-1.0, -1.0), None, 0, 0, []
    seconds = 0.0
    for i in range(args.pretrain_steps):
        t1 = time.perf_counter()
        m.step()
        seconds += time.perf_counter() - t1
        if (i + 1) % args.valid_every and i + 1 < args.pretrain_steps:
            continue
        score = held_out(objective, m.x, "valid")
        history.append((i + 1, seconds, *score))
        print(
            f"  MLE step {i + 1} ({seconds:.0f} s): valid {metric_label(args)} {score[0]:.2f}, "
            f"exact {score[1]:.1f}%",
            flush=True,
        )
        if score > best:
            best, best_x, best_step, waited = score, m.x.detach().clone(), i + 1, 0
        else:
            waited += 1
        if waited >= args.patience or best[0] >= 100.0:
            break
    m.close()
    info = {
        "seconds": seconds,
        "steps": history[-1][0],
        "best_step": best_step,
        "sequences": best_step * args.mle_batch,
        "valid_bleu": best[0],
        "valid_exact": best[1],
        "history": history,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    torch.save({"x": best_x, "info": info}, path)
    print(f"MLE pretraining: best at step {best_step}, valid {best}, {seconds:.0f} s", flush=True)
    return best_x, info


def methods(args: argparse.Namespace) -> dict[str, dict]:
    """label -> (objective batch size and split, sequences per step, minimize options)."""
    table = {
        f"ES (rank {args.rank})": dict(
            batch=args.es_batch,
            split=args.rl_split,
            per_step=args.population * args.es_batch,
            options=dict(
                estimator="es",
                rank=args.rank,
                population=args.population,
                sigma=args.sigma,
                antithetic=True,
                shaping="centered_ranks",
                lr=args.es_lr,
            ),
        ),
        "REINFORCE (RLOO)": dict(
            batch=args.rl_batch,
            split=args.rl_split,
            per_step=args.samples * args.rl_batch,
            options=dict(
                estimator="reinforce",
                samples=args.samples,
                baseline="leave_one_out",
                lr=args.lr,
            ),
        ),
        "more MLE": dict(
            batch=args.mle_batch,
            split="train",
            per_step=args.mle_batch,
            options=dict(estimator="gradient", lr=args.lr),
        ),
        # countdown only: maximum likelihood on the prompts' own references, as if every
        # prompt came with a worked answer (the control that labels would buy)
        "MLE on new labels": dict(
            batch=args.mle_batch,
            split="prompts",
            per_step=args.mle_batch,
            options=dict(estimator="gradient", lr=args.lr),
        ),
    }
    if args.task != "countdown":
        del table["MLE on new labels"]
    return table


def finetune(task, model, x0, seed: int, spec: dict, args) -> list[tuple]:
    """One run: ``[(sequences, seconds, test BLEU, test exact match %), …]`` from the start to
    the budget."""
    objective = TranslationObjective(model, task, batch_size=spec["batch"], split=spec["split"])
    steps = max(1, round(args.budget / spec["per_step"]))
    every = max(1, round(args.eval_every / spec["per_step"]))
    m = zoopt.Minimizer(
        objective,
        x0.clone(),
        steps=steps,
        seed=seed,
        evaluate_center=False,  # no method pays for decoding θ's minibatch
        progress=False,
        **spec["options"],
    )
    curve = [(0, 0.0, *held_out(objective, x0, args.eval_split))]
    seconds = 0.0
    for i in range(steps):
        t0 = time.perf_counter()
        m.step()
        seconds += time.perf_counter() - t0
        if (i + 1) % every == 0 or i + 1 == steps:
            curve.append(
                ((i + 1) * spec["per_step"], seconds, *held_out(objective, m.x, args.eval_split))
            )
            print(
                f"    {curve[-1][0]:6d} sequences {seconds:6.1f} s  {args.eval_split} "
                f"{metric_label(args)} {curve[-1][2]:.2f}"
                f"  exact {curve[-1][3]:.1f}%",
                flush=True,
            )
    m.close()
    if args.task == "countdown":
        shape, share = answer_shape(objective, m.x, args.eval_split)
        print(f"    most common answer shape: {shape!r} in {share:.0f}% of answers", flush=True)
    return curve


def answer_shape(objective: TranslationObjective, x: torch.Tensor, split: str) -> tuple[str, float]:
    """The most common shape of the greedy Countdown answers (numbers as ``n``: ``"n + n -
    n"``) over ``split`` at ``x``, and its share (%)."""
    sources = [s for s, _ in objective.task.pairs(split)]
    hyps = objective.translate(x.detach(), sources)
    shapes = Counter(" ".join("n" if w.isdigit() else w for w in h.split()) for h in hyps)
    shape, count = shapes.most_common(1)[0]
    return shape, 100.0 * count / len(hyps)


def sum_baseline(task, split: str) -> float:
    """Share (%) of ``split``'s Countdown problems whose target is the sum of their numbers:
    what the one fixed answer shape "n + n + … + n" solves."""
    parts = [problem_parts(s) for s, _ in task.pairs(split)]
    hits = sum(sum(map(int, numbers)) == int(target) for numbers, target in parts)
    return 100.0 * hits / len(parts)


def _mean_sd(values: list[float], sign: str = "") -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):{sign}.2f} ± {sd:.2f}"


def report(curves: dict[str, list[list[tuple]]], start: tuple[float, float], metric: str) -> str:
    """The table: final held-out score (``metric``) and exact match (mean ± sd over seeds),
    their gains, the differences against more MLE (mean ± sd of the per-seed differences),
    wall time."""
    lines = [
        f"MLE checkpoint: {metric} {start[0]:.2f}, exact match {start[1]:.2f}%",
        f"| method | sequences | {metric} | gain | vs more MLE "
        "| exact match % | gain | vs more MLE | seconds (mean) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, runs in curves.items():
        cells = []
        for j in (2, 3):  # score, exact match
            final = [c[-1][j] for c in runs]
            cells += [_mean_sd(final), f"{statistics.mean(final) - start[j - 2]:+.2f}", "–"]
            if "more MLE" in curves:  # the per-seed differences
                control = [c[-1][j] for c in curves["more MLE"]]
                cells[-1] = _mean_sd([f - c for f, c in zip(final, control, strict=True)], "+")
        seconds = statistics.mean(c[-1][1] for c in runs)
        lines.append(
            f"| {label} | {runs[0][-1][0]:,} | " + " | ".join(cells) + f" | {seconds:.0f} |"
        )
    return "\n".join(lines)


def plot(
    curves, start: tuple[float, float], path: Path, metric: str, baseline: float | None = None
) -> None:
    """The held-out score (top) and exact match (bottom) against sequences (left) and
    seconds (right); ``baseline``: a reference level of the score (dotted)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: plot skipped")
        return
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharey="row")
    for (label, runs), colour in zip(curves.items(), ("C0", "C1", "C2", "C3"), strict=False):
        for j, c in enumerate(runs):
            seqs, secs, bleu, exact = zip(*c, strict=True)
            kw = dict(color=colour, alpha=0.8, label=label if j == 0 else None)
            for row, ys in enumerate((bleu, exact)):
                axes[row, 0].plot(seqs, ys, **kw)
                axes[row, 1].plot(secs, ys, **kw)
    xlabels = ("generated sequences", "seconds (evaluation excluded)")
    ylabels = (f"test {metric} (greedy)", "test exact match % (greedy)")
    for row in range(2):
        for col in range(2):
            ax = axes[row, col]
            ax.axhline(start[row], color="grey", lw=0.8, ls="--")
            if row == 0 and baseline is not None:
                ax.axhline(baseline, color="black", lw=0.8, ls=":", label="always n + n + n")
            ax.set_xlabel(xlabels[col])
            ax.set_ylabel(ylabels[row])
            ax.grid(alpha=0.3)
    axes[0, 0].legend()
    n = len(next(iter(curves.values())))
    fig.suptitle(f"Fine-tuning a Transformer from converged MLE ({n} seeds)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot: {path}")


class _RecordingObjective(TranslationObjective):
    """Records each ``evaluate`` call's losses and θ's loss on the same minibatch."""

    def __init__(self, *args, center: torch.Tensor, **kwargs):
        super().__init__(*args, **kwargs)
        self.center, self.records = center, []

    def evaluate(self, X, seed: int = 0) -> torch.Tensor:
        losses = super().evaluate(X, seed)
        self.records.append((losses.clone(), float(super().evaluate(self.center[None], seed)[0])))
        return losses


def countdown_outcomes(hyps: list[str], sources: list[str], operators: str) -> dict[str, int]:
    """Counts of Countdown answers: solved, malformed, wrong numbers (not exactly the given
    ones), wrong value (the given numbers, another result)."""
    kinds = dict.fromkeys(("solved", "malformed", "wrong numbers", "wrong value"), 0)
    for h, s in zip(hyps, sources, strict=True):
        words, given = h.split(), sorted(problem_parts(s)[0])
        if check_countdown(h, s, operators):
            kinds["solved"] += 1
        elif len(words) % 2 == 0 or not set(words[1::2]) <= set(operators):
            kinds["malformed"] += 1
        elif sorted(words[0::2]) != given:
            kinds["wrong numbers"] += 1
        else:
            kinds["wrong value"] += 1
    return kinds


def diagnose(task, model, x0: torch.Tensor, args: argparse.Namespace) -> None:
    """What the metric-driven methods see at the checkpoint ``x0``: the greedy score and
    exact match on 1,000 training pairs (for Countdown, what kind of answers fail);
    REINFORCE's M samples of 32 minibatches of ``--rl-split`` (share scoring 100, share of
    sources whose samples all score alike, which get a zero leave-one-out advantage, share
    with at least one sample at 100); ES members' minibatch score against θ's over 8 steps
    at lr 10⁻¹² (θ fixed)."""
    objective = TranslationObjective(model, task, batch_size=args.rl_batch, split=args.rl_split)
    pairs = task.pairs("train")[:1000]
    sources, refs = [s for s, _ in pairs], [t for _, t in pairs]
    hyps: list[str] = []
    for start in range(0, len(pairs), 250):
        hyps += objective.translate(x0, sources[start : start + 250])
    exact = 100.0 * sum(h == r for h, r in zip(hyps, refs, strict=True)) / len(refs)
    score = task.corpus_score(hyps, sources, refs)
    print(
        f"training pairs ({len(pairs):,}): greedy {metric_label(args)} {score:.2f}, "
        f"exact {exact:.1f}%"
    )
    if args.task == "countdown":
        kinds = countdown_outcomes(hyps, sources, task.operators)
        print("  greedy answers: " + ", ".join(f"{k} {v}" for k, v in kinds.items()))

    losses = torch.cat(
        [
            objective.sample_outputs(x0, args.samples, seeded_generator(s), seed=s).losses
            for s in range(32)
        ]
    )  # (32·B, M)
    alike = (losses.max(1).values - losses.min(1).values).abs() < 1e-9
    some = (losses < 1e-9).any(1)
    print(
        f"REINFORCE, {args.samples} samples of {len(losses)} {args.rl_split} sources: mean "
        f"sentence score {100 * (1 - losses.mean()):.2f}; samples at 100: "
        f"{100 * (losses < 1e-9).float().mean():.1f}%; sentences whose samples all score alike "
        f"(zero advantage): {100 * alike.float().mean():.1f}%; sources with at least one "
        f"sample at 100: {100 * some.float().mean():.1f}%"
    )

    objective = _RecordingObjective(
        model, task, batch_size=args.es_batch, split=args.rl_split, center=x0
    )
    spec = methods(args)[f"ES (rank {args.rank})"]["options"]
    m = zoopt.Minimizer(
        objective,
        x0.clone(),
        steps=8,
        seed=0,
        evaluate_center=False,
        progress=False,
        **{**spec, "lr": 1e-12},  # θ stays (Adam moves each coordinate by ~lr)
    )
    for _ in range(8):
        m.step()
    m.close()
    bleu = torch.cat([-out for out, _ in objective.records])
    theta = torch.cat([torch.full((len(out),), -c) for out, c in objective.records])
    print(
        f"ES, {len(bleu)} members on {args.es_batch}-source {args.rl_split} minibatches: θ's "
        f"{metric_label(args)} "
        f"{theta.mean():.2f}; member − θ {(bleu - theta).mean():+.2f}; members equal to θ "
        f"{100 * ((bleu - theta).abs() < 1e-9).float().mean():.1f}%, above θ "
        f"{100 * (bleu > theta + 1e-9).float().mean():.1f}%"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="a smoke run of about a minute")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..n-1, one after another")
    p.add_argument("--seed", type=int, default=None, help="run this seed alone (see --merge)")
    p.add_argument("--merge", action="store_true", help="table and plot of the --seed runs")
    p.add_argument("--pretrain-only", action="store_true", help="MLE pretraining alone")
    p.add_argument("--diagnose", action="store_true", help="the rewards seen at the checkpoint")
    p.add_argument("--tag", default=None, help="name of the result files (default full/quick)")
    p.add_argument(
        "--task",
        default="translation",
        choices=("translation", "countdown"),
        help="translation (BLEU) or countdown (share solved, by a verifier)",
    )
    p.add_argument(
        "--rl-split",
        default=None,
        help="split ES and REINFORCE draw sources from (default: train for translation, "
        "prompts for countdown: problems without a reference read)",
    )
    p.add_argument("--prompt-size", type=int, default=20000, help="countdown: prompts split")
    p.add_argument("--numbers", type=int, default=4, help="countdown: operands per problem")
    p.add_argument("--max-number", type=int, default=20, help="countdown: largest operand")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train-size", type=int, default=5000)
    p.add_argument("--test-size", type=int, default=300)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--pretrain-steps", type=int, default=1500, help="most MLE steps")
    p.add_argument("--valid-every", type=int, default=100, help="MLE steps between validations")
    p.add_argument("--patience", type=int, default=4, help="validations without improvement")
    p.add_argument("--pretrain-lr", type=float, default=1e-3)
    p.add_argument("--budget", type=int, default=4096, help="sequences per fine-tuning run")
    p.add_argument("--eval-every", type=int, default=1024, help="sequences between evaluations")
    p.add_argument(
        "--eval-split", default="test", choices=("valid", "test"), help="valid to tune on"
    )
    p.add_argument("--lr", type=float, default=1e-4, help="REINFORCE and more-MLE Adam rate")
    p.add_argument("--mle-batch", type=int, default=32)
    p.add_argument("--rl-batch", type=int, default=8)
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--rank", type=int, default=4)
    p.add_argument("--population", type=int, default=16)
    p.add_argument("--es-batch", type=int, default=16)
    p.add_argument("--sigma", type=float, default=0.01)
    p.add_argument("--es-lr", type=float, default=1e-3)
    p.add_argument("--methods", default="all", help="comma-separated labels' first words")
    args = p.parse_args()
    if args.quick:
        args.dim, args.layers, args.train_size, args.test_size = 64, 1, 500, 50
        args.pretrain_steps, args.budget, args.eval_every, args.seeds = 40, 256, 128, 2
        args.valid_every = 20
        args.population, args.es_batch = 4, 8
        args.prompt_size = min(args.prompt_size, 500)
    if args.rl_split is None:
        args.rl_split = "prompts" if args.task == "countdown" else "train"
    tag = args.tag or ("quick" if args.quick else "full")
    if args.task == "countdown" and args.tag is None:
        tag = f"countdown_{tag}"
    metric = metric_label(args)
    torch.set_num_threads(args.threads)

    if args.merge:  # the result files of runs started with --seed (and --methods)
        found: dict[str, list] = {}
        for f in sorted(OUT.glob(f"{tag}_seed*.json")):  # seed order within each method
            saved = json.loads(f.read_text())
            start = tuple(saved["start"])
            for label, runs in saved["curves"].items():
                found.setdefault(label, []).extend(runs)
        curves = {label: found[label] for label in methods(args) if label in found}
        print(report(curves, start, metric))
        baseline = None
        if args.task == "countdown":
            baseline = sum_baseline(build(args)[0], args.eval_split)
            print(f"all '+' (the sum) solves {baseline:.2f}% of {args.eval_split}")
        plot(curves, start, OUT / f"{tag}.png", metric, baseline)
        return

    task, model = build(args)
    n = sum(p.numel() for p in model.parameters())
    print(f"Transformer: {n:,} parameters; {len(task.train_pairs)} training pairs", flush=True)
    x0, info = pretrain(task, model, args)
    if args.diagnose:
        diagnose(task, model, x0, args)
    if args.pretrain_only or args.diagnose:
        return
    start = held_out(TranslationObjective(model, task), x0, args.eval_split)
    print(
        f"MLE checkpoint: {args.eval_split} {metric} {start[0]:.2f}, exact match {start[1]:.2f}%",
        flush=True,
    )
    if args.task == "countdown":
        shape, share = answer_shape(TranslationObjective(model, task), x0, args.eval_split)
        print(
            f"checkpoint's most common answer shape {shape!r} in {share:.0f}% of answers; "
            f"all '+' (the sum) solves {sum_baseline(task, args.eval_split):.2f}% of "
            f"{args.eval_split}",
            flush=True,
        )
    curves = {}
    chosen = None if args.methods == "all" else args.methods.lower().split(",")
    seeds = [args.seed] if args.seed is not None else list(range(args.seeds))
    for label, spec in methods(args).items():
        if chosen and label.split()[0].lower() not in chosen:
            continue
        for seed in seeds:
            print(f"  {label}, seed {seed}", flush=True)
            curves.setdefault(label, []).append(finetune(task, model, x0, seed, spec, args))
    print(report(curves, start, metric))
    OUT.mkdir(parents=True, exist_ok=True)
    name = tag if args.seed is None else f"{tag}_seed{args.seed}"
    if chosen:
        name += "_" + "_".join(chosen)
    saved = {"args": vars(args), "pretrain": info, "start": start, "curves": curves}
    (OUT / f"{name}.json").write_text(json.dumps(saved))
    if args.seed is None:
        plot(curves, start, OUT / f"{name}.png", metric)


if __name__ == "__main__":
    main()
