"""What a profile's runs cost, measured from its summary (each run's wall time and end), not
estimated: the run time by kind of run, and the wall time the runs took, overlaps counted once.

A long grid is computed over several sittings (working sessions), with runners side by side:
its run time (the sum over runs) then exceeds the wall time during which some run was
executing (the union of the runs' intervals), and both differ from the calendar span. The
`cost` command and the book's Reproducing page report all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pandas as pd

#: Two runs further apart than this belong to different sittings (sessions).
SITTING_GAP = timedelta(minutes=30)
#: The columns that name a kind of run in the cost table.
KIND_COLUMNS = ("group", "model", "epochs")


@dataclass(frozen=True)
class Sitting:
    """A stretch of time with runs executing, and no gap longer than SITTING_GAP."""

    start: pd.Timestamp
    end: pd.Timestamp
    busy_seconds: float  # wall time during which at least one run was executing
    run_seconds: float  # the sum of the runs' wall times (larger when runs overlapped)
    runs: int


@dataclass(frozen=True)
class ProfileCost:
    """The measured cost of a profile's complete runs."""

    by_kind: pd.DataFrame  # one row per kind of run: runs, hours, median minutes per run
    sittings: list[Sitting]

    @property
    def runs(self) -> int:
        return sum(s.runs for s in self.sittings)

    @property
    def run_hours(self) -> float:
        return sum(s.run_seconds for s in self.sittings) / 3600

    @property
    def busy_hours(self) -> float:
        return sum(s.busy_seconds for s in self.sittings) / 3600

    def headline(self) -> str:
        """One sentence: runs, run time, wall time and sittings."""
        if not self.sittings:
            return "No complete run has a recorded wall time."
        first, last = self.sittings[0].start, self.sittings[-1].end
        return (
            f"{self.runs} runs took {self.run_hours:.2f} h of run time and "
            f"{self.busy_hours:.2f} h of wall time (runs side by side counted once), "
            f"in {len(self.sittings)} sitting(s) from {first:%Y-%m-%d %H:%M} "
            f"to {last:%Y-%m-%d %H:%M} UTC."
        )


def profile_cost(summary: pd.DataFrame) -> ProfileCost:
    """The cost of the complete runs of a summary (`summary.csv`: its status, finished and
    seconds columns). A run's interval is [finished - seconds, finished]."""
    if not {"status", "finished", "seconds"} <= set(summary.columns):
        summary = summary.iloc[0:0].reindex(columns=["status", "finished", "seconds"])
    done = summary[summary["status"] == "complete"].dropna(subset=["finished", "seconds"])
    done = done.assign(
        end=pd.to_datetime(done["finished"], utc=True),
        seconds=done["seconds"].astype(float),
    )
    done = done.assign(start=done["end"] - pd.to_timedelta(done["seconds"], unit="s"))
    kinds = [c for c in KIND_COLUMNS if c in done]
    by_kind = (
        done.groupby(kinds, dropna=False)["seconds"]
        .agg(runs="size", hours=lambda s: s.sum() / 3600, median_minutes=lambda s: s.median() / 60)
        .reset_index()
        if kinds and len(done)
        else pd.DataFrame(columns=[*kinds, "runs", "hours", "median_minutes"])
    )
    return ProfileCost(by_kind=by_kind, sittings=_sittings(done.sort_values("start")))


def _sittings(runs: pd.DataFrame) -> list[Sitting]:
    """Merge the runs' intervals (sorted by start) into sittings."""
    sittings: list[Sitting] = []
    start = end = None
    busy = run_seconds = 0.0
    count = 0
    for begin, finish, seconds in zip(runs["start"], runs["end"], runs["seconds"], strict=True):
        if end is not None and begin - end > SITTING_GAP:
            sittings.append(Sitting(start, end, busy, run_seconds, count))
            start = end = None
            busy = run_seconds = 0.0
            count = 0
        if end is None:
            start, end = begin, finish
            busy = (finish - begin).total_seconds()
        elif finish > end:
            # Only the part of this run after everything so far adds wall time.
            busy += (finish - max(begin, end)).total_seconds()
            end = finish
        run_seconds += seconds
        count += 1
    if end is not None:
        sittings.append(Sitting(start, end, busy, run_seconds, count))
    return sittings


def _end(sitting: Sitting) -> str:
    """A sitting's end: the time, and the date too when it is not the start's."""
    same_day = sitting.end.date() == sitting.start.date()
    return f"{sitting.end:%H:%M}" if same_day else f"{sitting.end:%Y-%m-%d %H:%M}"


def cost_markdown(cost: ProfileCost) -> str:
    """The cost as Markdown: the headline, then the tables (:func:`cost_tables_markdown`)."""
    return f"{cost.headline()}\n\n{cost_tables_markdown(cost)}"


def cost_tables_markdown(cost: ProfileCost) -> str:
    """The sittings and the runs by kind, as Markdown tables (empty without complete runs)."""
    if not cost.sittings:
        return ""
    lines = ["| sitting | runs | run time (h) | wall time (h) |", "| --- | --- | --- | --- |"]
    for s in cost.sittings:
        lines.append(
            f"| {s.start:%Y-%m-%d %H:%M} to {_end(s)} | {s.runs} | "
            f"{s.run_seconds / 3600:.2f} | {s.busy_seconds / 3600:.2f} |"
        )
    kinds = [c for c in KIND_COLUMNS if c in cost.by_kind]
    lines += [
        "",
        "| " + " | ".join(kinds) + " | runs | run time (h) | median per run (min) |",
        "| " + " | ".join("---" for _ in kinds) + " | --- | --- | --- |",
    ]
    for row in cost.by_kind.itertuples(index=False):
        values = row._asdict()
        lines.append(
            "| "
            + " | ".join(str(values[k]) for k in kinds)
            + f" | {values['runs']} | {values['hours']:.2f} | {values['median_minutes']:.1f} |"
        )
    return "\n".join(lines) + "\n"
