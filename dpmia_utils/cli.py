"""Command line: `python -m dpmia_utils run|book|bench ...`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_run(args: argparse.Namespace) -> int:
    from .grid import GridError
    from .runner import run_grid

    try:
        report = run_grid(
            args.profile,
            results_root=args.results,
            force=args.force,
            dry_run=args.dry_run,
            scheduler=args.scheduler,
            n_workers=args.workers,
            progress=not args.no_progress,
            groups=tuple(args.group or ()),
        )
    except GridError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not report.ok:
        print(
            f"{len(report.failed)} run(s) failed; see the failed/ folder of the results store",
            file=sys.stderr,
        )
        return 1
    return 0


def _cmd_book(args: argparse.Namespace) -> int:
    from .book import BookError, build_book

    try:
        result = build_book(
            args.profile,
            results_root=args.results,
            strict=args.strict,
            allow_partial=args.allow_partial,
        )
    except BookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"The book is at {result.index}")
    return 0


def _cmd_publish(args: argparse.Namespace) -> int:
    from .book import BookError, publish_profile

    try:
        folder = publish_profile(args.profile, args.results)
    except BookError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"published {args.profile} into {folder}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from .bench import main as bench_main

    return bench_main(args)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the dpmia command line."""
    parser = argparse.ArgumentParser(prog="python -m dpmia_utils", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="execute a grid profile (resumes; skips complete runs)")
    run.add_argument("profile", help="a profile file, e.g. parameters/quick.yml")
    run.add_argument("--force", action="store_true", help="redo complete runs too")
    run.add_argument("--dry-run", action="store_true", help="list runs and estimated time only")
    run.add_argument("--scheduler", help="an existing Dask scheduler, e.g. tcp://host:8786")
    run.add_argument(
        "--workers", type=_positive_int, default=1, help="local Dask workers (default 1)"
    )
    run.add_argument("--results", type=Path, help="results root (default: results/)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--group", action="append", help="run only this group of the profile (repeatable)"
    )
    run.set_defaults(func=_cmd_run)

    book = sub.add_parser("book", help="assemble executed notebooks and build the Jupyter Book")
    book.add_argument("--profile", default="quick")
    book.add_argument("--results", type=Path, help="results root (default: results/)")
    book.add_argument("--strict", action="store_true", help="fail on any Sphinx warning")
    book.add_argument(
        "--allow-partial",
        action="store_true",
        help="build even when runs are missing, listing the gap",
    )
    book.set_defaults(func=_cmd_book)

    publish = sub.add_parser(
        "publish", help="copy a profile's summary and run records (no weights) into published/"
    )
    publish.add_argument("profile", help="a profile name, e.g. table1")
    publish.add_argument("--results", type=Path, help="results root (default: results/)")
    publish.set_defaults(func=_cmd_publish)

    bench = sub.add_parser("bench", help="time plain vs DP training epochs side by side")
    bench.add_argument("--samples", type=int, default=1504)
    bench.add_argument("--variants", type=int, default=28220)
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--real-data", action="store_true", help="use the yeast data slice")
    bench.set_defaults(func=_cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m dpmia_utils` and the `dpmia` script."""
    args = build_parser().parse_args(argv)
    return args.func(args)
