"""The ``zoopt`` command line: run, compare, resume, plot and list.

::

    zoopt run CONFIG.toml [--set key=value ...] [--out DIR]
    zoopt compare CONFIG.toml [--estimators sampling,es,...] [--seeds 0,1,2] [--out DIR]
    zoopt resume RUN_DIR [--steps N] [--max-evaluations N]
    zoopt plot RUN_DIR... [--out FILE.png]
    zoopt list

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
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def config_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("config", help="a TOML config (see examples/configs/)")
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

    r = sub.add_parser("run", help="run one experiment from a config")
    config_args(r)
    r.add_argument("--estimator", help="override the config's estimator")

    c = sub.add_parser("compare", help="several estimators and seeds under one budget")
    config_args(c)
    c.add_argument(
        "--estimators",
        type=_csv(str),
        help="comma-separated estimators (default: compare.estimators, else all)",
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

    sub.add_parser("list", help="estimators, objective kinds, environments, optimizers")
    return p


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


def cmd_run(args: argparse.Namespace) -> int:
    """``zoopt run``."""
    from zoopt.experiment import run_experiment

    return _report(run_experiment(_load(args)))


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
    rows, files = compare(cfg, _default_dir(cfg), args.estimators, args.seeds)
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
    out = (
        Path(args.out)
        if args.out
        else (dirs[0] / "curve.png" if len(dirs) == 1 else Path("curves.png"))
    )
    print(plot_learning_curves(dirs, out))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """``zoopt list``."""
    import zoopt
    from zoopt.config import OBJECTIVE_KINDS
    from zoopt.estimators import ESTIMATORS
    from zoopt.optim import SCHEDULES, available_optimizers

    print("estimators:")
    for name in sorted(ESTIMATORS):
        doc = (ESTIMATORS[name].__doc__ or "").strip().splitlines()
        print(f"  {name:<12} {doc[0] if doc else ''}")
    print("objective kinds ([objective] kind = ...):")
    for kind, (module, schema) in OBJECTIVE_KINDS.items():
        keys = ", ".join(k for k in schema if k != "kind")
        try:
            __import__(module)
            status = ""
        except ImportError:
            status = " (not available in this installation)"
        print(f"  {kind:<15} {keys}{status}")
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

    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, CheckpointError) as e:
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
