"""What a profile's runs cost, measured from its summary (`pipeline.cost`): run time, wall time
with overlapping runs counted once, sittings split at long gaps; and where a reader sees it
(the `cost` command, the book's profile note). Summaries are written by hand: nothing runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from dpmia_utils.cli import main
from dpmia_utils.pipeline.cost import SITTING_GAP, cost_markdown, profile_cost
from dpmia_utils.pipeline.store import ProfileStore
from dpmia_utils.publish import book, pages

T0 = pd.Timestamp("2026-11-30T23:00:00Z")


def _row(run_id, start_minutes, minutes, status="complete", model="lasso", epochs=50):
    end = T0 + pd.Timedelta(minutes=start_minutes + minutes)
    return {
        "run_id": run_id,
        "label": f"{model} {run_id}",
        "group": "g",
        "model": model,
        "epochs": epochs,
        "status": status,
        "finished": end.isoformat() if status == "complete" else None,
        "seconds": minutes * 60.0 if status == "complete" else None,
    }


#: Two runners side by side (a: 0-60 min, b: 30-100, c inside b: 40-50), then after a
#: 3-hour break one more run (d: 280-300); e never ran.
SUMMARY = pd.DataFrame(
    [
        _row("a", 0, 60, model="cnn", epochs=100),
        _row("b", 30, 70, model="cnn", epochs=100),
        _row("c", 40, 10),
        _row("d", 280, 20),
        _row("e", 0, 5, status="missing"),
    ]
)


def test_wall_time_counts_overlapping_runs_once_and_breaks_make_sittings():
    cost = profile_cost(SUMMARY)
    assert cost.runs == 4  # the missing run has no time
    assert cost.run_hours == pytest.approx((60 + 70 + 10 + 20) / 60)
    assert cost.busy_hours == pytest.approx((100 + 20) / 60)
    first, second = cost.sittings
    assert (first.runs, first.busy_seconds, first.run_seconds) == (3, 100 * 60, 140 * 60)
    assert first.start == T0 and first.end == T0 + pd.Timedelta(minutes=100)
    assert (second.runs, second.busy_seconds) == (1, 20 * 60)
    by_kind = cost.by_kind.set_index(["model", "epochs"])
    assert by_kind.loc[("cnn", 100), "runs"] == 2
    assert by_kind.loc[("cnn", 100), "median_minutes"] == pytest.approx(65)
    assert by_kind.loc[("lasso", 50), "hours"] == pytest.approx(0.5)


def test_a_gap_of_exactly_the_limit_stays_in_one_sitting():
    gap = SITTING_GAP.total_seconds() / 60
    cost = profile_cost(pd.DataFrame([_row("a", 0, 10), _row("b", 10 + gap, 10)]))
    assert len(cost.sittings) == 1
    assert cost.busy_hours == pytest.approx(20 / 60)  # the gap is not wall time of runs
    assert len(profile_cost(pd.DataFrame([_row("a", 0, 10), _row("b", 11 + gap, 10)])).sittings)


def test_markdown_gives_the_headline_sittings_and_kinds():
    text = cost_markdown(profile_cost(SUMMARY))
    assert text.startswith(
        "4 runs took 2.67 h of run time and 2.00 h of wall time (runs side by side counted "
        "once), in 2 sitting(s) from 2026-11-30 23:00 to 2026-12-01 04:00 UTC."
    )
    # A sitting past midnight names its end's date.
    assert "| 2026-11-30 23:00 to 2026-12-01 00:40 | 3 | 2.33 | 1.67 |" in text
    assert "| g | cnn | 100 | 2 | 2.17 | 65.0 |" in text


def test_no_timed_run_says_so():
    assert profile_cost(SUMMARY.iloc[[4]]).headline() == (
        "No complete run has a recorded wall time."
    )
    # Summaries written before the runner kept the times.
    assert not profile_cost(SUMMARY.drop(columns=["seconds"])).sittings


def test_cost_command_reads_the_store_and_the_book_note_shows_it(tmp_path, monkeypatch, capsys):
    store = ProfileStore.for_profile("tiny", tmp_path)
    store.root.mkdir(parents=True)
    SUMMARY.to_csv(store.summary_path, index=False)
    # Records are not written, so the book's own check would call every run invalid: keep
    # the summary as written (the check has its own tests).
    monkeypatch.setattr(book, "checked_summary", lambda store: pd.read_csv(store.summary_path))
    assert main(["cost", "tiny", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "4 runs took 2.67 h of run time and 2.00 h of wall time" in out
    page = pages.cost_page_markdown("tiny", SUMMARY)
    assert page.startswith("Profile `tiny`: 4 runs took 2.67 h of run time")
    assert "| sitting | runs | run time (h) | wall time (h) |" in page
    assert pages.cost_page_markdown("tiny", SUMMARY.iloc[[4]]) == (
        "Profile `tiny`: no complete run has a recorded wall time.\n\n"
    )


def test_cost_piped_to_a_reader_that_stops_early_ends_quietly(tmp_path):
    """`python -m dpmia_utils cost paper | head -3`: head exits before the table is written,
    which used to end in a BrokenPipeError traceback. A pipe whose reading end is already
    closed makes every write fail, whatever the buffer sizes."""
    store = ProfileStore.for_profile("tiny", tmp_path)
    store.root.mkdir(parents=True)
    SUMMARY.to_csv(store.summary_path, index=False)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "dpmia_utils", "cost", "tiny", "--results", str(tmp_path)],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr
