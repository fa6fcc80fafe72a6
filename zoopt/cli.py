"""The ``zoopt`` command line: init, run, compare, resume, plot and list.

::

    zoopt init [NAME] [--force]
    zoopt run CONFIG.toml [--set key=value ...] [--out DIR] [--estimator NAME] [--force]
    zoopt compare CONFIG.toml [--set key=value ...] [--estimators es,...] [--seeds 0,1,2]
                  [--out DIR] [--force]
    zoopt resume RUN_DIR [--steps N] [--max-evaluations N]
    zoopt plot RUN_DIR... [--out FILE.png] [--label TEXT ...] [--yscale auto|linear|log]
    zoopt list
    zoopt --version

``run`` and ``compare`` refuse a directory that already holds results unless ``--force``
is given (then the earlier run's checkpoint and results are replaced).

Exit status: 0 on success, 1 when a run fails, 2 for bad input (config, arguments,
checkpoint), 130 when a run was interrupted with Ctrl-C (its checkpoint is saved).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "build_parser"]

EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


def _csv(kind: type):
    def parse(text: str) -> list:
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise argparse.ArgumentTypeError("expected a comma-separated list")
        try:
            return [kind(t) for t in items]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated {kind.__name__}s, got {text!r}"
            ) from None

    return parse


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``zoopt``."""
    p = argparse.ArgumentParser(
        prog="zoopt",
        description="Optimise non-differentiable objectives with interchangeable estimators.",
    )
    p.add_argument("--version", action="version", version=f"zoopt {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    i = sub.add_parser("init", help="write an example config to the current directory")
    i.add_argument("name", nargs="?", help="the example's name (without a name: list them)")
    i.add_argument("--force", action="store_true", help="replace an existing file")

    def config_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "config", help="a TOML config (`zoopt init` lists examples and writes one here)"
        )
        sp.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config key, e.g. --set budget.steps=200 "
            "(VALUE is parsed as TOML; repeatable)",
        )
        sp.add_argument("--out", help="output directory (overrides output.dir)")
        sp.add_argument(
            "--force",
            action="store_true",
            help="replace the results of an earlier run in the output directory",
        )

    r = sub.add_parser("run", help="run one experiment from a config")
    config_args(r)
    r.add_argument("--estimator", help="override the config's estimator")

    c = sub.add_parser("compare", help="several estimators and seeds under one budget")
    config_args(c)
    c.add_argument(
        "--estimators",
        type=_csv(str),
        help="comma-separated estimators (default: compare.estimators, else auto and all)",
    )
    c.add_argument(
        "--seeds", type=_csv(int), help="comma-separated seeds (default: compare.seeds, else 0)"
    )

    s = sub.add_parser("resume", help="continue a run from its checkpoint")
    s.add_argument("run_dir", help="a run directory (holds checkpoint.pt)")
    s.add_argument(
        "--steps",
        type=_positive_int,
        help="run until this many steps in total (default: the configured budget)",
    )
    s.add_argument("--max-evaluations", type=_positive_int, help="a new evaluation budget")

    pl = sub.add_parser("plot", help="learning curves of one or several runs in one PNG")
    pl.add_argument("run_dirs", nargs="+", help="run directories")
    pl.add_argument(
        "--out",
        help="PNG path (default: RUN_DIR/curve.png for one run, "
        "else curves.png in the current directory)",
    )
    pl.add_argument(
        "--label",
        dest="labels",
        action="append",
        metavar="TEXT",
        help="legend label, once per run in the order given "
        "(default: the run name, estimator and seed, as far as they differ)",
    )
    pl.add_argument(
        "--yscale",
        choices=("auto", "linear", "log"),
        default="auto",
        help="y-axis scale; auto: log when every value is positive over > 2 decades",
    )

    sub.add_parser("list", help="estimators, objective kinds, environments, optimizers")
    return p


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("zoopt-torch")
    except PackageNotFoundError:  # a checkout on sys.path, not installed
        import zoopt

        return zoopt.__version__


def _error(message: str) -> int:
    print(f"zoopt: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _load(args: argparse.Namespace) -> dict:
    from zoopt.config import load_config

    overrides = list(args.overrides)
    if getattr(args, "estimator", None):
        overrides.append(f"estimator={_toml_string(args.estimator)}")
    if args.out:
        overrides.append(f"output.dir={_toml_string(args.out)}")
    return load_config(args.config, overrides)


def _toml_string(text: str) -> str:
    import json

    return json.dumps(text)


#: files that mark a directory as holding results of ``run`` or ``compare``
RESULT_FILES = ("checkpoint.pt", "metrics.jsonl", "summary.json", "comparison.json")


def _earlier_results(out_dir: Path) -> list[Path]:
    """Result files in ``out_dir`` and in its ``ESTIMATOR/seedS`` run directories."""
    found = [out_dir / n for n in RESULT_FILES if (out_dir / n).exists()]
    for n in RESULT_FILES[:3]:
        found += sorted(out_dir.glob(f"*/seed*/{n}"))
    return found


def _refuse_earlier(out_dir: Path, force: bool) -> str | None:
    """The error message when ``out_dir`` holds earlier results and ``--force`` is not given."""
    found = _earlier_results(out_dir)
    if not found or force:
        return None
    shown = ", ".join(str(p.relative_to(out_dir)) for p in found[:3])
    more = f" and {len(found) - 3} more" if len(found) > 3 else ""
    resume = out_dir if (out_dir / "checkpoint.pt").exists() else "RUN_DIR"
    return (
        f"{out_dir} already holds results ({shown}{more}); pass --force to replace them, "
        f"--out DIR to write elsewhere, or continue a run with  zoopt resume {resume}"
    )


def cmd_run(args: argparse.Namespace) -> int:
    """``zoopt run``."""
    from zoopt.experiment import _default_dir, run_experiment

    cfg = _load(args)
    refusal = _refuse_earlier(_default_dir(cfg), args.force)
    if refusal:
        return _error(refusal)
    return _report(run_experiment(cfg))


def _report(summary) -> int:
    """Print the end-of-run lines of ``summary``; the exit status of the run."""
    from zoopt.experiment import describe

    print(describe(summary))
    if summary.status == "interrupted":
        print(f"interrupted: resume with  zoopt resume {summary.run_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """``zoopt compare``."""
    import json

    from zoopt.experiment import _default_dir, compare, format_table

    cfg = _load(args)
    out_dir = _default_dir(cfg)
    refusal = _refuse_earlier(out_dir, args.force)
    if refusal:
        return _error(refusal)
    rows, files = compare(cfg, out_dir, args.estimators, args.seeds)
    data = json.loads(Path(files["json"]).read_text())
    print()
    print(
        f"{cfg['name']}: {len(args.seeds or cfg['compare']['seeds'])} seed(s), "
        f"budget {_budget(cfg)}"
    )
    print(format_table(rows, data["metric_name"], data["held_out_name"]))
    for key in ("table", "plot"):
        if key in files:
            print(f"{key}: {files[key]}")
    return 0 if any(r.runs for r in rows) else EXIT_FAILED


def _budget(cfg: dict) -> str:
    b = cfg["budget"]
    text = f"{b['steps']} steps"
    if b.get("max_evaluations"):
        text = f"{b['max_evaluations']} evaluations (at most {b['steps']} steps)"
    return text


def cmd_resume(args: argparse.Namespace) -> int:
    """``zoopt resume``."""
    from zoopt.experiment import resume_experiment

    summary = resume_experiment(args.run_dir, args.steps, args.max_evaluations)
    if summary is None:
        print(
            f"{args.run_dir}: the run is already complete; pass --steps N (a larger total) "
            "or --max-evaluations N to continue it"
        )
        return 0
    return _report(summary)


def cmd_plot(args: argparse.Namespace) -> int:
    """``zoopt plot``."""
    from zoopt.runlog import plot_learning_curves

    dirs = [Path(d) for d in args.run_dirs]
    for d in dirs:
        if not (d / "metrics.jsonl").is_file():
            return _error(f"{d}: not a run directory (no metrics.jsonl)")
    if args.labels is not None and len(args.labels) != len(dirs):
        return _error(
            f"--label: give one label per run directory ({len(dirs)}), got {len(args.labels)}"
        )
    out = (
        Path(args.out)
        if args.out
        else (dirs[0] / "curve.png" if len(dirs) == 1 else Path("curves.png"))
    )
    print(plot_learning_curves(dirs, out, labels=args.labels, yscale=args.yscale))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    """``zoopt init``."""
    from zoopt.example_configs import describe_examples, write_example

    if not args.name:
        print("example configs (zoopt init NAME writes NAME.toml here):")
        for name, line in describe_examples().items():
            print(f"  {name:<18} {line}")
        return 0
    try:
        path = write_example(args.name, Path.cwd(), force=args.force)
    except (KeyError, FileExistsError) as e:
        return _error(e.args[0])
    except OSError as e:  # a directory it cannot write, or one that no longer exists
        where = e.filename or "the current directory"
        return _error(
            f"init: cannot write {where} ({e.strerror or type(e).__name__}); run zoopt init "
            "from a directory you can write to"
        )
    print(f"wrote {path}; run it with:  zoopt run {path.name}")
    return 0


#: objective kind → the optional package it cannot run without
KIND_NEEDS = {"classification": "sklearn", "translation": "sacrebleu"}


def cmd_list(args: argparse.Namespace) -> int:
    """``zoopt list``."""
    import importlib.util

    import zoopt
    from zoopt.config import objective_recipes
    from zoopt.estimators import ESTIMATORS
    from zoopt.extras import EXTRAS
    from zoopt.lowrank import lowrank_estimators
    from zoopt.optim import SCHEDULES, available_optimizers

    print("estimators:")
    print(f"  {'auto':<12} The default: chosen from D, the budget, bounds/integers and noise.")
    for name in sorted(ESTIMATORS):
        doc = (ESTIMATORS[name].__doc__ or "").strip().splitlines()
        print(f"  {name:<12} {doc[0] if doc else ''}")
    print(
        "  low-rank draws for a module's weight matrices ([estimators.NAME] rank = r): "
        + ", ".join(lowrank_estimators())
    )
    print("objective kinds ([objective] kind = ...):")
    for kind, recipe in objective_recipes().items():
        keys = ", ".join(recipe.schema)
        try:
            __import__(recipe.needs or recipe.build.__module__)
            status = ""
        except ImportError:
            status = " (not available in this installation)"
        needs = KIND_NEEDS.get(kind)
        if not status and needs and importlib.util.find_spec(needs) is None:
            status = f" (needs zoopt-torch[{EXTRAS[needs][0]}])"
        print(f"  {kind:<15} {recipe.doc}{status}")
        print(f"  {'':<15} keys: {keys}")
    try:
        from zoopt_envs import ENV_IDS

        envs = list(ENV_IDS)
    except ImportError:
        envs = []
    print("zoopt Gymnasium environments:" + ("" if envs else " (none installed)"))
    for env_id in envs:
        print(f"  {env_id}")
    print("optimizers ([optimizer] name = ...):")
    print("  " + ", ".join(available_optimizers()))
    print("schedules: " + ", ".join(SCHEDULES))
    print(f"zoopt {zoopt.__version__}")
    return 0


COMMANDS = {
    "init": cmd_init,
    "run": cmd_run,
    "compare": cmd_compare,
    "resume": cmd_resume,
    "plot": cmd_plot,
    "list": cmd_list,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``zoopt`` console script; returns the exit status."""
    from zoopt.checkpoint import CheckpointError
    from zoopt.config import ConfigError
    from zoopt.extras import MissingExtraError

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, CheckpointError, MissingExtraError) as e:
        return _error(str(e))
    except KeyboardInterrupt:
        print("zoopt: aborted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:
        from zoopt.experiment import NotApplicable
        from zoopt.minimize import NonFiniteError

        if isinstance(e, NotApplicable):
            return _error(str(e))
        if isinstance(e, NonFiniteError):
            print(f"zoopt: run failed: {e}", file=sys.stderr)
            return EXIT_FAILED
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
