"""Every shell command README.md shows works as written (on smoke data where the real is too slow).

The README's ```bash blocks are parsed (continuation lines joined, trailing `#` comments
dropped) and each command must appear in COMMANDS, which says how it is exercised, or in
NOT_EXECUTED, which says why it is not. A command added to the README, or an edited one, fails
`test_every_readme_command_is_known` until this table says how to run it.

Substitutions, each for a stated reason (the rest of every command stays as written):

- `.venv/bin/X` is the X beside this interpreter (the test may run from another virtualenv);
- papermill: the real yeast data may be absent (tests never need them), and the tests' private
  cache would parse them anew, so the smoke profile's synthetic `data` block is merged into
  the command's `-y` parameters (the README's other keys, such as `run` and the trait, stay
  as written), and the output notebook goes to a private folder instead of /tmp;
- `run <profile>`: the real grids take hours, so `parameters/smoke.yml` stands for them, on
  the smoke grid's results (the `smoke_grid` fixture; a private copy of them lacking a run
  where the command must execute something), and `--group lasso` becomes a group smoke.yml
  has; `--dry-run` on `paper.yml` runs as written when the real archives are found without a
  download (the dry run checksums them), else on smoke.yml;
- `--scheduler tcp://host:8786` is the address of the session's real Dask scheduler;
- `book --profile paper` builds the smoke results, and `publish table1` publishes them;
  both commands write into the repository (`_build/`, `book/_generated/`, `published/`) and
  `dpmia_utils.paths` has no override for those folders, so they run through the same CLI
  entry point in a fresh process whose book root and published folder are redirected to
  private folders (SHIM below).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BIN = Path(sys.executable).parent
SMOKE = REPO / "parameters" / "smoke.yml"
SMOKE_GROUP = "baseline"  # stands for table1.yml's `lasso` group: a group smoke.yml has
DROPPED_GROUP = "dp"  # the group whose run a private copy of the smoke results lacks
pytestmark = pytest.mark.timeout(900)


# ------------------------------------------------------------------ the README's commands


def readme_commands(text: str | None = None) -> list[str]:
    """The commands of the README's ```bash blocks, one string each (shlex-joined tokens).

    Lines ending in a backslash are joined; a `#` comment after a command is dropped, and a
    line that is a comment only (the SLURM recipe) is prose, not a command.
    """
    text = README.read_text(encoding="utf-8") if text is None else text
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        for line in re.sub(r"\\\n", " ", block).splitlines():
            tokens = shlex.split(line, comments=True)
            if tokens:
                commands.append(shlex.join(tokens))
    return commands


def argv(command: str) -> list[str]:
    """The command's tokens, `.venv/bin/X` replaced by the X beside this interpreter."""
    tokens = shlex.split(command)
    if tokens[0].startswith(".venv/bin/"):
        tokens[0] = str(BIN / tokens[0].removeprefix(".venv/bin/"))
    return tokens


def replaced(tokens: list[str], old: str, new: str) -> list[str]:
    assert old in tokens, f"{old!r} is no longer in {tokens}: update this test's substitution"
    return [new if t == old else t for t in tokens]


# --------------------------------------------------------------------------- how to run them


@dataclass
class Context:
    """What a command's check needs: private folders, fixtures on demand, a runner."""

    request: pytest.FixtureRequest
    tmp_path: Path

    def fixture(self, name: str):
        return self.request.getfixturevalue(name)

    def run(
        self, tokens: list[str], timeout: float = 600, **env: str
    ) -> subprocess.CompletedProcess:
        """The command in a fresh process at the repository root; asserts it exits 0."""
        store = self.fixture("isolated_store")
        full_env = {
            **os.environ,
            "DPMIA_RESULTS_DIR": str(store / "results"),
            "DPMIA_CACHE_DIR": str(store / "cache"),
            "DPMIA_TF_THREADS": os.environ.get("DPMIA_TF_THREADS", "1"),
            **env,
        }
        done = subprocess.run(
            tokens,
            capture_output=True,
            text=True,
            env=full_env,
            cwd=REPO,
            timeout=timeout,
        )
        assert done.returncode == 0, (
            f"{shlex.join(tokens)} exited {done.returncode}:\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        return done

    def smoke_copy(self, drop_group: str | None = None) -> Path:
        """A private results root holding a copy of the smoke grid's results (and its training
        checkpoints), without the run of `drop_group` if given; returns the root."""
        _, smoke = self.fixture("smoke_grid")
        root = self.tmp_path / "results"
        shutil.copytree(smoke, root / "smoke", symlinks=True)
        if (smoke.parent / ".checkpoints").is_dir():
            shutil.copytree(smoke.parent / ".checkpoints", root / ".checkpoints", symlinks=True)
        if drop_group is not None:
            summary = pd.read_csv(root / "smoke" / "summary.csv")
            (dropped,) = summary.loc[summary["group"] == drop_group, "run_id"].astype(str)
            shutil.rmtree(root / "smoke" / "runs" / dropped)
        return root


def smoke_data() -> dict:
    return yaml.safe_load(SMOKE.read_text())["data"]


def complete_runs(root: Path) -> dict[str, str]:
    """Run ID -> group of the complete runs of the smoke profile under `root`."""
    from dpmia_utils.pipeline.store import ProfileStore

    store = ProfileStore.for_profile("smoke", root)
    return {rid: store.load_record(rid)["group"] for rid in store.complete_run_ids()}


def check_papermill(ctx: Context, command: str) -> None:
    """As written, but on the smoke data (merged into `-y`) and into a private output file."""
    tokens = argv(command)
    output = tokens[2]
    assert output.startswith("/tmp/") and output.endswith(".ipynb"), tokens
    mine = ctx.tmp_path / Path(output).name
    tokens[2] = str(mine)
    at = tokens.index("-y") + 1
    written = yaml.safe_load(tokens[at])
    parameters = {**written, "data": {**written.get("data", {}), **smoke_data()}}
    tokens[at] = json.dumps(parameters)
    results = ctx.tmp_path / "results"  # a notebook run by hand writes results/manual/scratch
    ctx.run(tokens, DPMIA_RESULTS_DIR=str(results))

    notebook = nbformat.read(mine, as_version=4)
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    assert not errors, errors
    # papermill received the README's parameters (the data block aside) unchanged.
    injected = notebook.metadata["papermill"]["parameters"]
    assert {k: v for k, v in injected.items() if k != "data"} == {
        k: v for k, v in written.items() if k != "data"
    }
    assert injected["data"] == parameters["data"]
    if "run" in written:  # the training notebook writes its output where the README says
        target = json.loads((results / "manual" / "scratch" / "target.json").read_text())
        assert target["noise_multiplier"] == written["run"]["noise_multiplier"]
        assert target["epsilon"], "a DP run reports its epsilon"


def real_archives_present() -> bool:
    """Whether the yeast archives are found without a download (the dry run checksums them)."""
    from dpmia_utils.data import DataError
    from dpmia_utils.data.locate import locate_raw_data

    try:
        locate_raw_data(download=False)
    except DataError:
        return False
    return True


def check_dry_run(ctx: Context, command: str) -> None:
    """As written when the real archives are here, else on smoke.yml; it must write nothing."""
    tokens = argv(command)
    if not real_archives_present():
        tokens = replaced(tokens, "parameters/paper.yml", "parameters/smoke.yml")
    results = ctx.tmp_path / "results"
    done = ctx.run(tokens, DPMIA_RESULTS_DIR=str(results))
    # The smoke grid has everything to run; the paper grid, published with the repository at
    # this code version, nothing (its runs listed as published). Either way each run is listed.
    if "nothing is left to run" in done.stdout:
        assert "published with the repository, not redone" in done.stdout, done.stdout
        assert "  published ~" in done.stdout
    else:
        assert "estimated time for the" in done.stdout, done.stdout
        assert "pending" in done.stdout
    assert not results.exists(), "a dry run wrote into the results store"


def check_resume(ctx: Context, command: str) -> None:
    """On the smoke grid's own results, all complete: nothing is executed or rewritten.

    (The store itself, not a copy: a copy's new path would re-execute the profile notebooks,
    whose parameters name the results root.)"""
    tokens = replaced(argv(command), "parameters/paper.yml", "parameters/smoke.yml")
    _, smoke = ctx.fixture("smoke_grid")
    before = complete_runs(smoke.parent)
    executed = {
        p: p.stat().st_mtime_ns for p in smoke.rglob("*") if p.suffix in (".json", ".ipynb")
    }
    done = ctx.run(tokens, DPMIA_RESULTS_DIR=str(smoke.parent))
    assert f"smoke: 0 executed, {len(before)} already complete, 0 failed" in done.stdout
    assert complete_runs(smoke.parent) == before
    assert {p: p.stat().st_mtime_ns for p in executed} == executed


def check_group(ctx: Context, command: str) -> None:
    """On a copy of the smoke results lacking its `dp` run: `--group baseline` (complete)
    executes nothing and leaves the other group's missing run missing."""
    tokens = replaced(argv(command), "parameters/table1.yml", "parameters/smoke.yml")
    tokens = replaced(tokens, "lasso", SMOKE_GROUP)
    root = ctx.smoke_copy(drop_group=DROPPED_GROUP)
    before = complete_runs(root)
    assert DROPPED_GROUP not in before.values()
    done = ctx.run(tokens, DPMIA_RESULTS_DIR=str(root))
    assert "smoke: 0 executed" in done.stdout, done.stdout
    assert complete_runs(root) == before


def check_scheduler(ctx: Context, command: str) -> None:
    """smoke.yml through the session's real scheduler, on the smoke grid's own results: the
    runner connects, finds every run complete and rewrites nothing. (Executing runs on that
    scheduler's workers is what the smoke_grid fixture itself does; a copy of the store would
    re-execute the profile notebooks too, 25 s more of the test command.)"""
    tokens = replaced(argv(command), "parameters/full.yml", "parameters/smoke.yml")
    tokens = replaced(tokens, "tcp://host:8786", ctx.fixture("dask_scheduler"))
    _, smoke = ctx.fixture("smoke_grid")
    before = complete_runs(smoke.parent)
    done = ctx.run(tokens, DPMIA_RESULTS_DIR=str(smoke.parent))
    assert f"smoke: 0 executed, {len(before)} already complete, 0 failed" in done.stdout
    assert complete_runs(smoke.parent) == before


#: Runs `python -m dpmia_utils ARGS` (same parser, same commands) with the book built under
#: $README_TEST_BOOK_ROOT and `published/` at $README_TEST_PUBLISHED, so neither the
#: repository's _build/ and book/_generated/ nor its published/ is touched.
SHIM = """
import os, sys
from pathlib import Path
from dpmia_utils import paths
from dpmia_utils.publish import book

published = Path(os.environ["README_TEST_PUBLISHED"])
paths.published_dir = lambda: published
build = book.build_book
book.build_book = lambda *a, **k: build(*a, book_root=Path(os.environ["README_TEST_BOOK_ROOT"]), **k)
from dpmia_utils.cli import main
sys.exit(main(sys.argv[1:]))
"""


def shimmed(ctx: Context, tokens: list[str]) -> tuple[list[str], dict[str, str]]:
    assert tokens[1:3] == ["-m", "dpmia_utils"], tokens
    env = {
        "README_TEST_BOOK_ROOT": str(ctx.tmp_path / "book"),
        "README_TEST_PUBLISHED": str(ctx.tmp_path / "published"),
    }
    return [tokens[0], "-c", SHIM, *tokens[3:]], env


def check_book(ctx: Context, command: str) -> None:
    """`--profile smoke` on the smoke grid's results, built in a private book root."""
    _, smoke = ctx.fixture("smoke_grid")
    tokens = replaced(argv(command), "paper", "smoke")
    tokens, env = shimmed(ctx, tokens)
    done = ctx.run(tokens, DPMIA_RESULTS_DIR=str(smoke.parent), **env)
    index = ctx.tmp_path / "book" / "_build" / "html" / "index.html"
    assert f"The book is at {index}" in done.stdout, done.stdout
    assert index.is_file()
    results = (index.parent / "book" / "results.html").read_text(encoding="utf-8")
    assert "smoke" in results
    assert not (ctx.tmp_path / "published").exists()


def check_publish(ctx: Context, command: str) -> None:
    """`publish smoke` from the smoke grid's results into a private published/ folder:
    every run's record, and the notebooks of the profile stages and of the runs shown."""
    _, smoke = ctx.fixture("smoke_grid")
    tokens = replaced(argv(command), "table1", "smoke")
    tokens, env = shimmed(ctx, tokens)
    done = ctx.run(tokens, DPMIA_RESULTS_DIR=str(smoke.parent), **env)
    target = ctx.tmp_path / "published" / "smoke"
    assert f"published smoke into {target}" in done.stdout, done.stdout
    summary = pd.read_csv(target / "summary.csv")
    complete = set(summary.loc[summary["status"] == "complete", "run_id"].astype(str))
    assert complete and {p.name for p in (target / "runs").iterdir()} == complete
    for run in (target / "runs").iterdir():
        kept = {p.name for p in run.rglob("*") if p.is_file()}
        assert {"record.json", "params.json"} <= kept, run
        # No weights; notebooks only for the runs the book shows.
        assert kept <= {
            "record.json",
            "params.json",
            "02_target_training.ipynb",
            "03_membership_inference.ipynb",
        }, run
    with_notebooks = [r for r in (target / "runs").iterdir() if list(r.glob("*.ipynb"))]
    assert len(with_notebooks) == 2  # the baseline the book shows and the DP run beside it
    assert {p.name for p in (target / "stages").iterdir()} == {
        "01_data_prep.ipynb",
        "04_curve_fitting.ipynb",
    }


def check_cost(ctx: Context, command: str) -> None:
    """`cost smoke` on the smoke grid's results (the README's reads the published paper
    profile): every complete run is counted, with its run and wall time."""
    _, smoke = ctx.fixture("smoke_grid")
    tokens = [t for t in replaced(argv(command), "paper", "smoke") if t != "--published"]
    done = ctx.run(tokens, DPMIA_RESULTS_DIR=str(smoke.parent))
    complete = (pd.read_csv(smoke / "summary.csv")["status"] == "complete").sum()
    assert f"{complete} runs took " in done.stdout, done.stdout
    assert "h of wall time (runs side by side counted once), in 1 sitting(s)" in done.stdout


def check_help_only(ctx: Context, command: str) -> None:
    """A long-running service: only `<bin>/dask <subcommand> --help`, which must exist and
    know every option the README passes."""
    tokens = argv(command)
    done = ctx.run([tokens[0], tokens[1], "--help"], timeout=120)
    for option in (t for t in tokens[2:] if t.startswith("--")):
        assert option in done.stdout, f"{option} is not an option of {tokens[1]}"


Check = Callable[[Context, str], None]

#: Every README command, exactly as the README writes it (trailing comment dropped), and how
#: it is exercised.
COMMANDS: dict[str, Check] = {
    ".venv/bin/papermill notebooks/01_data_prep.ipynb /tmp/01.ipynb -y "
    """'{"data": {"trait": "CopperSulfate"}}'""": check_papermill,
    ".venv/bin/papermill notebooks/02_target_training.ipynb /tmp/02.ipynb -y "
    """'{"run": {"model": "lasso", "l1": 0.001352, "dp": true, "noise_multiplier": 1.2}}'""": (
        check_papermill
    ),
    ".venv/bin/python -m dpmia_utils run parameters/paper.yml --dry-run": check_dry_run,
    ".venv/bin/python -m dpmia_utils run parameters/paper.yml": check_resume,
    ".venv/bin/python -m dpmia_utils run parameters/table1.yml --group lasso": check_group,
    ".venv/bin/python -m dpmia_utils book --profile paper": check_book,
    ".venv/bin/python -m dpmia_utils publish table1": check_publish,
    ".venv/bin/python -m dpmia_utils cost paper --published": check_cost,
    ".venv/bin/python -m dpmia_utils run parameters/full.yml --scheduler tcp://host:8786": (
        check_scheduler
    ),
}

#: README commands that are not executed, and why. Each is still checked by `check_help_only`:
#: the executable exists and accepts the options shown. (The SLURM lines are `#` comments in
#: the README: prose about dask-jobqueue, not commands.)
NOT_EXECUTED: dict[str, str] = {
    # A scheduler serves until it is killed; the session's `dask_scheduler` fixture starts a
    # real one (on a free port, with a scheduler file) that the --scheduler command uses.
    ".venv/bin/dask scheduler": "a long-running service (it never exits)",
    # A worker of an address that does not exist here (tcp://host:8786) would wait forever;
    # the `dask_scheduler` fixture starts real workers with --nthreads 1.
    ".venv/bin/dask worker tcp://host:8786 --nthreads 1": "a long-running service on another "
    "machine's scheduler",
}


# ------------------------------------------------------------------------------------ tests


def test_every_readme_command_is_known():
    commands = readme_commands()
    assert commands, "no ```bash block found in README.md"
    unknown = [c for c in commands if c not in COMMANDS and c not in NOT_EXECUTED]
    assert not unknown, (
        "README.md shows commands this test does not run; add each to COMMANDS (with how it "
        f"is exercised) or to NOT_EXECUTED (with why not): {unknown}"
    )
    stale = [c for c in [*COMMANDS, *NOT_EXECUTED] if c not in commands]
    assert not stale, f"no longer in README.md (remove them from this test): {stale}"


def test_the_parser_joins_continuations_and_drops_comments():
    text = (
        "```bash\n.venv/bin/x a \\\n    -y '{\"k\": 1}'   # a comment\n# prose only\n```\n"
        "```python\nnot_a_command()\n```\n"
    )
    assert readme_commands(text) == [""".venv/bin/x a -y '{"k": 1}'"""]


def short(command: str) -> str:
    """A test ID: the command without its venv prefix and its -y parameters."""
    tokens = shlex.split(command.replace(".venv/bin/", ""))
    return " ".join(t for t in tokens if not t.startswith("{"))


#: The checks that use the session's smoke grid (by name, so pytest cannot see it): under
#: `make test`'s parallel workers they run on the worker that built it (tests/conftest.py).
ON_THE_SMOKE_GRID = (
    check_resume,
    check_group,
    check_scheduler,
    check_book,
    check_publish,
    check_cost,
)


def readme_params() -> list:
    smoke = pytest.mark.xdist_group("smoke_grid")
    return [
        pytest.param(c, marks=smoke) if COMMANDS.get(c) in ON_THE_SMOKE_GRID else c
        for c in readme_commands()
    ]


@pytest.mark.parametrize("command", readme_params(), ids=short)
def test_readme_command_works_as_written(command, request, tmp_path):
    if command in NOT_EXECUTED:
        check_help_only(Context(request, tmp_path), command)
        return
    if command not in COMMANDS:
        pytest.fail(f"{command!r} is not in COMMANDS or NOT_EXECUTED")
    COMMANDS[command](Context(request, tmp_path), command)
