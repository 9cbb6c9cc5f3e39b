"""Command line: `python -m dpmia_utils run|params|book|publish|spotcheck|compare|cost|bench ...`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from .constants import PAPER_TRAINING_ROWS, YEAST_VARIANTS


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """A command's options as its function's keywords (each option's dest is a keyword)."""
    return {k: v for k, v in vars(args).items() if k not in ("command", "func")}


def _cmd_run(args: argparse.Namespace) -> int:
    from .pipeline.grid import run_grid

    report = run_grid(**_options(args))
    if not report.ok:
        print(
            f"{len(report.failed)} run(s) failed; see the failed/ folder of the results store",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    from .publish.book import build_book

    print(f"The book is at {build_book(**_options(args)).index}")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from .publish.publication import (
        publication_change,
        publish_profile,
        published_versions,
        refit_published,
    )

    if args.refit:
        print(f"executed the results notebook again in {refit_published(args.profile)}")
        return 0
    options = _options(args)
    del options["refit"]
    before = published_versions(args.profile)
    folder = publish_profile(**options)
    change = publication_change(before, published_versions(args.profile))
    print(f"published {args.profile} into {folder}: {change}")
    return 0


def _cmd_params(args: argparse.Namespace) -> int:
    import yaml

    from .pipeline.profiles import load_profile

    profile = load_profile(args.profile_path)
    run = profile.only_run(dict(args.where), args.groups)
    text = yaml.safe_dump(profile.notebook_parameters(run), sort_keys=False)
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote the parameters of {run.label} to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _cmd_spotcheck(args: argparse.Namespace) -> int:
    from .publish.spotcheck import spot_check

    check = spot_check(**_options(args))
    print(check.summary(), file=sys.stdout if check.ok else sys.stderr)
    return 0 if check.ok else 1


def _cmd_compare(args: argparse.Namespace) -> int:
    from .publish.spotcheck import compare_with_published

    comparison = compare_with_published(**_options(args))
    print(comparison.summary(), file=sys.stdout if comparison.ok else sys.stderr)
    return 0 if comparison.ok else 1


def _cmd_cost(args: argparse.Namespace) -> int:
    from .pipeline.cost import cost_markdown, profile_cost
    from .publish.book import checked_summary, profile_store

    store = profile_store(args.profile, args.results_root, args.published)
    print(f"profile {args.profile} ({store.root}):\n")
    print(cost_markdown(profile_cost(checked_summary(store))))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .devtools.bench import main as bench_main

    return bench_main(args)


def _user_errors() -> dict[type[Exception], int]:
    """Errors a command reports as one line (no traceback), with the exit code each gives:
    2 for a malformed profile or unreadable data, 1 for a book that cannot be built."""
    from .publish.book import BookError
    from .publish.spotcheck import SpotCheckError
    from .stages.params import GridError

    return {GridError: 2, BookError: 1, SpotCheckError: 1}


def _key_value(text: str) -> tuple[str, Any]:
    """KEY=VALUE, the value read as YAML (0.001352 is a number, lasso a string)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


#: The --results option of every command that reads or writes the results store.
RESULTS_OPTION: dict[str, Any] = {
    "dest": "results_root",
    "metavar": "DIR",
    "type": Path,
    "help": "results root (default: results/)",
}


def _add_published_check_options(parser: argparse.ArgumentParser) -> None:
    """The profile, the published folder and the tolerance: `spotcheck`'s and `compare`'s."""
    parser.add_argument(
        "profile_path", metavar="profile", help="a profile file, e.g. parameters/paper.yml"
    )
    parser.add_argument(
        "--published",
        dest="published_root",
        metavar="DIR",
        type=Path,
        help="where the published profiles are (default: published/)",
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        help="largest absolute difference allowed in a metric (default 0.02)",
    )


def _add_selection(parser: argparse.ArgumentParser, verb: str) -> None:
    """The --group and --where options that choose runs of a profile."""
    parser.add_argument(
        "--group",
        dest="groups",
        metavar="GROUP",
        action="append",
        default=[],
        help=f"{verb} the runs of this group of the profile (repeatable)",
    )
    parser.add_argument(
        "--where",
        dest="where",
        metavar="KEY=VALUE",
        action="append",
        type=_key_value,
        default=[],
        help=f"{verb} the runs with this parameter value, e.g. batch_size=16 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the dpmia command line."""
    parser = argparse.ArgumentParser(prog="python -m dpmia_utils", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute a grid profile (resumes; skips complete runs)")
    run.add_argument(
        "profile_path", metavar="profile", help="a profile file, e.g. parameters/quick.yml"
    )
    run.add_argument("--force", action="store_true", help="redo complete runs too")
    run.add_argument("--dry-run", action="store_true", help="list runs and estimated time only")
    published = run.add_mutually_exclusive_group()
    published.add_argument(
        "--recompute-published",
        dest="skip_published",
        action="store_false",
        help="recompute the runs published with the repository too (`compare` then checks "
        "them against the publication; `make results` does this); by default a run published "
        "under the same ID (same parameters, code and data) is left out",
    )
    # The default since the paper grid was published; kept so that older commands still work.
    published.add_argument("--skip-published", action="store_true", help=argparse.SUPPRESS)
    run.set_defaults(skip_published=True)
    run.add_argument("--scheduler", help="an existing Dask scheduler, e.g. tcp://host:8786")
    run.add_argument(
        "--workers",
        dest="n_workers",
        metavar="N",
        type=_positive_int,
        default=1,
        help="local Dask workers (default 1)",
    )
    run.add_argument("--results", **RESULTS_OPTION)
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    _add_selection(run, "run only")
    run.set_defaults(func=_cmd_run)

    params = sub.add_parser(
        "params",
        help="one run's notebook parameters as YAML, for papermill -f",
        description="Write the parameters the runner gives the stage notebooks for the one run "
        "of a profile that --group/--where pick, as YAML for `papermill ... -f FILE`.",
    )
    params.add_argument(
        "profile_path", metavar="profile", help="a profile file, e.g. parameters/paper.yml"
    )
    _add_selection(params, "pick")
    params.add_argument("--output", "-o", metavar="FILE", help="write here (default: stdout)")
    params.set_defaults(func=_cmd_params)

    book = sub.add_parser("book", help="assemble executed notebooks and build the Jupyter Book")
    book.add_argument("--profile", default="quick")
    book.add_argument("--results", **RESULTS_OPTION)
    book.add_argument("--strict", action="store_true", help="fail on any Sphinx warning")
    book.add_argument(
        "--allow-partial",
        action="store_true",
        help="build even when runs are missing, listing the gap",
    )
    book.add_argument(
        "--published",
        action="store_true",
        help="build from the results published with the repository (published/), no training",
    )
    book.set_defaults(func=_cmd_book)

    publish = sub.add_parser(
        "publish", help="copy a profile's summary and run records (no weights) into published/"
    )
    publish.add_argument("profile", help="a profile name, e.g. table1")
    publish.add_argument("--results", **RESULTS_OPTION)
    publish.add_argument(
        "--refit",
        action="store_true",
        help="only execute the published results notebook again, on the published summary "
        "(after a change to that notebook or to publish/; no results store needed)",
    )
    publish.set_defaults(func=_cmd_publish)

    spot = sub.add_parser(
        "spotcheck",
        help="recompute one published run from scratch and compare it with its record",
    )
    _add_published_check_options(spot)
    spot.add_argument("--run", dest="run_id", metavar="ID", help="default: the cheapest DP run")
    spot.add_argument(
        "--stamp",
        metavar="FILE",
        type=Path,
        help="record a pass here, and do not recompute while FILE records a pass of the same "
        "run, record, code version and tolerance (make book keeps one under results/)",
    )
    spot.set_defaults(func=_cmd_spotcheck)

    compare = sub.add_parser(
        "compare",
        help="compare a recomputed profile's runs with its published records (no training)",
    )
    _add_published_check_options(compare)
    compare.add_argument("--results", **RESULTS_OPTION)
    compare.set_defaults(func=_cmd_compare)

    cost = sub.add_parser(
        "cost",
        help="what a profile's complete runs took: run time, wall time and sittings, measured",
    )
    cost.add_argument("profile", help="a profile name, e.g. paper")
    cost.add_argument("--results", **RESULTS_OPTION)
    cost.add_argument(
        "--published", action="store_true", help="read the results published in published/"
    )
    cost.set_defaults(func=_cmd_cost)

    # The benchmark's only entry point (devtools/bench.py; its memory probes run
    # `bench --probe MODEL TRAINER` in a fresh process).
    bench = sub.add_parser("bench", help="time plain vs DP training epochs side by side")
    bench.add_argument("--samples", type=int, default=PAPER_TRAINING_ROWS)
    bench.add_argument("--variants", type=int, default=YEAST_VARIANTS)
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--real-data", action="store_true", help="use the yeast data slice")
    bench.add_argument("--probe", nargs=2, metavar=("MODEL", "TRAINER"), help=argparse.SUPPRESS)
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m dpmia_utils` and the `dpmia` script."""
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a reader gone early shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:
        # The reader went away (`... | head`): stop quietly, as a Unix filter does, and send
        # what is still buffered nowhere so the interpreter's exit does not report it again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        code = next((c for kind, c in _user_errors().items() if isinstance(exc, kind)), None)
        if code is None:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return code
