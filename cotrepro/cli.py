"""The `cotrepro` command line.

    cotrepro validate FILE...                  check params files, run nothing
    cotrepro grade TASK IN.jsonl [-o OUT.jsonl] [--allow-code-execution]
    cotrepro run NOTEBOOK -f PARAMS.yaml       execute one notebook with papermill
    cotrepro reproduce [--scale S] [--only N]  the whole pipeline of a scale, then the findings
    cotrepro figures [--scale S]               figures and tables from stored results alone
    cotrepro plan PARAMS.yaml                  what a run will cost before it starts

Expected failures (bad params, malformed records, a failed step) print one line and exit non-zero;
a traceback means a bug in cotrepro.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


class UserError(Exception):
    """An error the user can fix; printed as one line without a traceback."""


def _cmd_validate(args: argparse.Namespace) -> int:
    from cotrepro.config import load_experiment
    from cotrepro.params import describe

    if args.explain:
        from cotrepro.config import ExperimentParams

        print("\n".join(describe(ExperimentParams)))
        return 0
    if not args.files:
        raise UserError("validate: give one or more params files (or --explain)")
    for path in args.files:
        load_experiment(path)
        print(f"ok  {path}")
    return 0


def _cmd_grade(args: argparse.Namespace) -> int:
    from cotrepro.grade import grade_file

    summary = grade_file(args.task, args.input, args.output, allow_code_execution=args.allow_code_execution,
                         workers=args.workers, item_timeout_s=args.timeout)
    parts = [f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()]
    print(f"{args.task}: " + " ".join(parts))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from cotrepro.pipeline import run_notebook

    out = run_notebook(args.notebook, args.params, run_root=args.run_root, force=args.force)
    print(f"done: {out}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from cotrepro.pipeline import reproduce

    only = [s.strip() for s in args.only.split(",")] if args.only else None
    reproduce(scale=args.scale, only=only, run_root=args.run_root, force=args.force)
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from cotrepro.pipeline import figures

    written = figures(scale=args.scale, run_root=args.run_root)
    print(f"wrote {len(written)} files under figures/")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from cotrepro.plan import plan

    print(plan(args.params))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cotrepro", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("validate", help="check params files without running anything")
    v.add_argument("files", nargs="*", type=Path)
    v.add_argument("--explain", action="store_true", help="list every key with its default and meaning")
    v.set_defaults(func=_cmd_validate)

    g = sub.add_parser("grade", help="grade completions in a JSONL file")
    g.add_argument("task")
    g.add_argument("input", type=Path)
    g.add_argument("-o", "--output", type=Path, default=None)
    g.add_argument("--allow-code-execution", action="store_true",
                   help="required for mbpp: runs generated code in the contained code runner")
    g.add_argument("--workers", type=int, default=None, help="worker processes (default: every core)")
    g.add_argument("--timeout", type=float, default=None, help="hard per-item time limit in seconds")
    g.set_defaults(func=_cmd_grade)

    r = sub.add_parser("run", help="execute one notebook with a params file")
    r.add_argument("notebook", type=Path)
    r.add_argument("-f", "--params", type=Path, required=True)
    r.add_argument("--run-root", type=Path, default=None)
    r.add_argument("--force", action="store_true", help="run even if its results are stored")
    r.set_defaults(func=_cmd_run)

    rp = sub.add_parser("reproduce", help="run the pipeline of one scale, then the findings")
    rp.add_argument("--scale", choices=["micro", "smoke", "paper"], default="micro")
    rp.add_argument("--only", default=None, help="comma-separated step names (e.g. 00_verifier_sanity)")
    rp.add_argument("--run-root", type=Path, default=None)
    rp.add_argument("--force", action="store_true")
    rp.set_defaults(func=_cmd_reproduce)

    f = sub.add_parser("figures", help="regenerate figures and tables from stored results")
    f.add_argument("--scale", choices=["micro", "smoke", "paper"], default="micro")
    f.add_argument("--run-root", type=Path, default=None)
    f.set_defaults(func=_cmd_figures)

    pl = sub.add_parser("plan", help="print what a run will cost before it starts")
    pl.add_argument("params", type=Path)
    pl.set_defaults(func=_cmd_plan)
    return p


def main(argv: list[str] | None = None) -> int:
    from cotrepro.params import ParamsError

    args = build_parser().parse_args(argv)
    expected: tuple[type[BaseException], ...] = (UserError, ParamsError, FileNotFoundError)
    try:
        from cotrepro.grade import RecordError
        from cotrepro.sandbox import CodeExecutionNotAllowed

        expected += (RecordError, CodeExecutionNotAllowed)
    except ImportError:  # pragma: no cover - during development only
        pass
    try:
        from cotrepro.pipeline import StepFailed

        expected += (StepFailed,)
    except ImportError:  # pragma: no cover
        pass
    try:
        return args.func(args)
    except expected as e:
        print(f"cotrepro {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: stored results are kept; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
