"""The `cotrepro` command line.

    cotrepro validate FILE...                   check params files (every one given), run nothing
    cotrepro plan PARAMS.yaml | --scale S       what a step, or a whole scale, will cost
    cotrepro run NOTEBOOK -f PARAMS.yaml        execute one step's notebook with papermill
    cotrepro reproduce [--scale S] [--only N]   the whole pipeline of a scale, skipping stored steps
    cotrepro figures [--scale S]                figures and tables from stored results alone
    cotrepro grade TASK IN.jsonl [-o OUT]       grade any model's completions
    cotrepro world [--json | check | build]     the micro world: where it is, its hashes, a rebuild

Expected failures (bad params, malformed records, a failed step) print one line and exit non-zero;
a traceback means a bug in cotrepro.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

SCALES = ("micro", "smoke", "paper")


class UserError(Exception):
    """An error the user can fix; printed as one line without a traceback."""


def _cmd_validate(args: argparse.Namespace) -> int:
    from cotrepro import steps
    from cotrepro.params import ParamsError, describe, load_yaml

    if args.explain:
        names = [args.explain] if args.explain != "all" else list(steps.BY_NAME)
        for name in names:
            print(f"# {name} (params/<scale>/{steps.get_step(name).stem}.yaml)")
            print("\n".join(describe(steps.get_step(name).schema())))
        return 0
    if not args.files:
        raise UserError("give one or more params files (or --explain STEP)")
    bad = 0
    for path in args.files:
        try:
            if path.name.startswith("_"):
                load_yaml(path)
                print(f"ok  {path}  (a fragment: its keys are checked with each step that includes it)")
                continue
            step, params = steps.load(path)
            steps.check_references(path, step, params)
            print(f"ok  {path}  ({step.name})")
        except ParamsError as e:
            print(f"cotrepro validate: error: {e}", file=sys.stderr)
            bad += 1
    if bad:
        print(f"cotrepro validate: {bad} of {len(args.files)} files have errors", file=sys.stderr)
    return 2 if bad else 0


def _cmd_grade(args: argparse.Namespace) -> int:
    kept = f"; {args.output} is unchanged" if args.output is not None and args.output.exists() else ""
    try:  # grade_file writes OUT only at the end, by renaming a finished file over it
        from cotrepro.grade import default_item_timeout_s, grade_file

        timeout_s = args.timeout if args.timeout is not None else default_item_timeout_s(args.task)
        summary = grade_file(args.task, args.input, args.output,
                             allow_code_execution=args.allow_code_execution, workers=args.workers,
                             item_timeout_s=timeout_s, progress=sys.stderr.isatty())
    except KeyboardInterrupt:
        print(f"cotrepro grade: interrupted: nothing was written{kept}", file=sys.stderr)
        return 130
    parts = [f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items()]
    print(f"{args.task}: " + " ".join(parts))
    n, errors, ungradable = summary["n"], summary["errors"], summary["ungradable"]
    timeouts, not_strings = summary.get("timeouts", 0), summary.get("non_string_completions", 0)
    timed_out = f"{timeouts} timed out after {timeout_s:g} s per item; raise --timeout"
    written = f"; graded records written to {args.output}" if args.output is not None else ""
    if ungradable == n:
        print(f"cotrepro grade: error: nothing could be graded: the gold answer of all {n} records "
              f"does not parse (see 'cotrepro grade --help' for the {args.task} fields){written}",
              file=sys.stderr)
        return 1
    if errors >= n - ungradable:
        why = timed_out if timeouts else "see the 'error' field of each graded record"
        print(f"cotrepro grade: error: nothing could be graded: all {errors} items failed ({why})"
              f"{written}", file=sys.stderr)
        return 1
    if timeouts:
        print(f"cotrepro grade: note: {timed_out} (counted as wrong)", file=sys.stderr)
    if ungradable:
        print(f"cotrepro grade: note: {ungradable} of {n} records are ungradable (their gold "
              "answer does not parse) and were left out of the accuracy", file=sys.stderr)
    if not_strings:
        print(f"cotrepro grade: note: {not_strings} of {n} completions are null or not strings: "
              "counted as wrong (see the 'note' field of those records)", file=sys.stderr)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from cotrepro.paths import shown
    from cotrepro.pipeline import run_notebook

    run, ran = run_notebook(args.notebook, args.params, run_root=args.run_root, force=args.force)
    if ran:
        print(f"done: executed notebook {shown(run.path / run.step.notebook.name)}; results in {shown(run.path)}")
    else:
        print(f"stored in {shown(run.path)}: nothing to run (--force reruns it)")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from cotrepro.pipeline import reproduce

    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    reproduce(scale=args.scale, only=only, run_root=args.run_root, force=args.force)
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from cotrepro.paths import figures_dir, shown
    from cotrepro.pipeline import figures

    written = figures(scale=args.scale, run_root=args.run_root)
    print(f"wrote {len(written)} files under {shown(figures_dir(args.scale, args.run_root))}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from cotrepro.plan import plan, plan_scale

    if bool(args.params) == bool(args.scale):
        raise UserError("give one params file, or --scale SCALE for every step of a scale")
    print(plan(args.params) if args.params else plan_scale(args.scale))
    return 0


def _cmd_world(args: argparse.Namespace) -> int:
    from cotrepro import world
    from cotrepro.paths import WORLD_DIR, resolve, shown

    world_dir = resolve(args.dir) if args.dir else WORLD_DIR
    if args.action == "build":
        out = resolve(args.out)
        command = ["cotrepro", "world", "build", "--out", args.out] + (["--smoke"] if args.smoke else []) \
            + (["--seed", str(args.seed)] if args.seed else []) + (["--arith-only"] if args.arith_only else [])
        world.rebuild(out, smoke=args.smoke, command=" ".join(command), seed=args.seed,
                      parts=("arith",) if args.arith_only else ("arith", "paraphraser", "stargraph"))
        print(f"built the micro world in {shown(out)} ({world.MANIFEST} holds the sha256 of every file)")
        return 0
    if args.action == "check":
        world.check(world_dir)
        print(f"ok  {shown(world_dir)}: every file matches {world.MANIFEST}")
        return 0
    described = world.describe(world_dir)
    print(json.dumps(described, indent=None if args.json else 2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from cotrepro import __version__

    p = argparse.ArgumentParser(prog="cotrepro", description=__doc__.split("\n\nExpected")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Start with the README; `cotrepro COMMAND --help` explains each command.")
    p.add_argument("--version", action="version", version=f"cotrepro {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check params files without running anything",
                       description="Check params files (each one given) against their step's schema, the "
                                   "cross-field rules and the files they refer to; prints one line per file.")
    v.add_argument("files", nargs="*", type=Path, metavar="FILE", help="params files (params/<scale>/NN_step.yaml)")
    v.add_argument("--explain", metavar="STEP", default=None,
                   help="list every key of STEP's params (or 'all') with its default and meaning")
    v.set_defaults(func=_cmd_validate)

    from cotrepro.tasks import TASK_NAMES

    grade_epilog = """\
record fields, by task (other fields are kept as they are):
  gsm8k            question, answer: a solution ending "#### N", or the bare number ("7" or 7)
  math, math500    problem, answer (the gold); or solution, whose last \\boxed{} is the gold
  countdown        target, nums (TinyZero); or input "30,100,93", output "23" (d1)
  mbpp             task_id, text, test_list (a list of asserts); optional test_setup_code,
                   challenge_test_list, code. Runs code: needs --allow-code-execution
  stargraph        question ("u,v|u,v|.../start,goal="), answer ("start,...,goal")
  arith            question, answer (an integer)
  every task       completion: the model's output (a string; null counts as wrong)

Each graded record gains correct, extracted (null: nothing parsed), ungradable (the gold does not
parse: left out of the accuracy), the task's details (gsm8k strict/flexible, mbpp exec_status,
countdown reason) and error where grading failed ("timeout").
The summary line gives n, accuracy (unparsed and failed items count as wrong), parse_failure_rate,
accuracy_over_parsed, ungradable, errors (and timeouts).

example:
  $ cat completions.jsonl
  {"question": "Tom has 3 apples, buys 4. How many?", "answer": "7", "completion": "3 + 4 = 7. #### 7"}
  $ cotrepro grade gsm8k completions.jsonl -o graded.jsonl
  gsm8k: n=1 accuracy=1.0000 parse_failure_rate=0.0000 accuracy_over_parsed=1.0000 ...

exit status: 0 graded; 1 nothing could be graded (every item failed or is ungradable);
2 bad input or arguments (one line on stderr, nothing written); 130 interrupted (nothing written).
"""

    g = sub.add_parser(
        "grade", help="grade completions in a JSONL file",
        description="Grade a model's completions. Each line of INPUT is one JSON object: the\n"
                    "task's own fields (below) plus \"completion\", the model's output. Prints\n"
                    "one summary line; with -o, also writes every record with its grade.",
        epilog=grade_epilog, formatter_class=argparse.RawDescriptionHelpFormatter)

    def grade_error(message: str) -> None:  # one line, no usage block
        print(f"cotrepro grade: error: {message} (see cotrepro grade --help)", file=sys.stderr)
        sys.exit(2)

    def positive(kind: type, wanted: str) -> object:
        def parse(text: str) -> object:
            try:
                value = kind(text)
            except ValueError:
                value = None
            if value is None or not 0 < value < float("inf"):
                raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
            return value
        parse.__name__ = kind.__name__
        return parse

    g.error = grade_error  # type: ignore[method-assign]
    g.add_argument("task", type=str.lower, choices=TASK_NAMES, metavar="TASK",
                   help=f"one of {', '.join(TASK_NAMES)} (record fields below)")
    g.add_argument("input", type=Path, metavar="INPUT", help="JSONL file: one record per line")
    g.add_argument("-o", "--output", type=Path, default=None, metavar="OUT",
                   help="write the graded records to OUT (JSONL, written whole at the end; "
                        "default: print the summary only)")
    g.add_argument("--allow-code-execution", action="store_true",
                   help="required for mbpp: runs generated code in the contained code runner")
    g.add_argument("--workers", type=positive(int, "a whole number of 1 or more"), default=None,
                   metavar="N", help="worker processes (default: every core)")
    g.add_argument("--timeout", type=positive(float, "a number of seconds above 0"), default=None,
                   metavar="S", help="hard per-item time limit in seconds; an item over it counts "
                                     "as wrong (default: 20, mbpp: 30, above its 5 s program limit)")
    g.set_defaults(func=_cmd_grade)

    r = sub.add_parser("run", help="execute one notebook with a params file",
                       description="Execute a step's notebook with papermill; results go to "
                                   "RUN_ROOT/<step>/<params hash>/ beside the executed notebook. A stored "
                                   "step is not rerun (see --force).")
    r.add_argument("notebook", type=Path, metavar="NOTEBOOK", help="notebooks/NN_step.ipynb")
    r.add_argument("-f", "--params", type=Path, required=True, metavar="PARAMS",
                   help="the step's params file (its step: key must name this notebook's step)")
    r.add_argument("--run-root", type=Path, default=None, metavar="DIR",
                   help="where results go (default: runs/ in the repository; relative paths are to the repository)")
    r.add_argument("--force", action="store_true", help="run even if its results are stored")
    r.set_defaults(func=_cmd_run)

    rp = sub.add_parser("reproduce", help="run the pipeline of one scale, then the findings",
                        description="Run every step of a scale in order (params/<scale>/NN_*.yaml), skipping "
                                    "stored steps; a killed run resumes at its first unfinished step.")
    rp.add_argument("--scale", choices=SCALES, default="micro", help="micro (default), smoke or paper")
    rp.add_argument("--only", default=None, metavar="STEPS",
                    help="comma-separated steps: numbers (03), names (train_on_traces) or file stems")
    rp.add_argument("--run-root", type=Path, default=None, metavar="DIR", help="where results go (default: runs/)")
    rp.add_argument("--force", action="store_true", help="rerun steps even if their results are stored")
    rp.set_defaults(func=_cmd_reproduce)

    f = sub.add_parser("figures", help="regenerate figures and tables from stored results",
                       description="Write every figure and table of a scale, and FINDINGS.md, from stored results "
                                   "(trains nothing). Writes to figures/ (micro) or figures/<scale>/, or under the "
                                   "run root when --run-root is given; with nothing stored, writes nothing.")
    f.add_argument("--scale", choices=SCALES, default="micro", help="micro (default), smoke or paper")
    f.add_argument("--run-root", type=Path, default=None, metavar="DIR", help="where results are read (default: runs/)")
    f.set_defaults(func=_cmd_figures)

    pl = sub.add_parser("plan", help="print what a run will cost before it starts",
                        description="Count the work a step's params ask for (fine-tunes, generated tokens, "
                                    "rollouts) and estimate its time from measured throughput; for paper scale, "
                                    "GPU-hours from the model sizes and stated assumptions.")
    pl.add_argument("params", type=Path, nargs="?", default=None, metavar="PARAMS", help="a step's params file")
    pl.add_argument("--scale", choices=SCALES, default=None, help="every step of a scale instead")
    pl.set_defaults(func=_cmd_plan)

    w = sub.add_parser("world", help="the micro world: its folders (--json), its hashes (check), a rebuild (build)",
                       description="Without an action, print the micro world's model folders, test file and task "
                                   "options. check: compare every file with its sha256. build: train a world from "
                                   "scratch (about two hours on one core; --smoke: seconds).")
    w.add_argument("action", nargs="?", choices=("check", "build"), default=None, help="check or build")
    w.add_argument("--json", action="store_true", help="print one JSON object on one line")
    w.add_argument("--dir", default=None, metavar="DIR", help="the world to read (default: world/)")
    w.add_argument("--out", default="world", metavar="DIR", help="build: where the world is written (default: world/)")
    w.add_argument("--smoke", action="store_true", help="build: a tiny world (the rebuild path in seconds)")
    w.add_argument("--seed", type=int, default=0, metavar="N",
                   help="build: seed of the corpora, initialisation and data order (the shipped world is 0)")
    w.add_argument("--arith-only", action="store_true",
                   help="build: the student and teacher only, no paraphraser or star-graph models (a "
                        "seed-spread build)")
    w.set_defaults(func=_cmd_world)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        return 130
    from cotrepro.grade import RecordError
    from cotrepro.params import ParamsError
    from cotrepro.paths import NotInRepository
    from cotrepro.pipeline import StepFailed
    from cotrepro.sandbox import CodeExecutionNotAllowed
    from cotrepro.world import WorldError

    expected = (UserError, ParamsError, FileNotFoundError, RecordError, CodeExecutionNotAllowed, StepFailed,
                NotInRepository, WorldError)
    try:
        return args.func(args)
    except expected as e:
        print(f"cotrepro {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cotrepro {args.command}: interrupted: finished work is stored; rerun the same command to resume",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # `cotrepro world --json | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
