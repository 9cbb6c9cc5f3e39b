"""Stage 03's record: the attack protocol's outcome as ``attack.json`` holds it.

The attacks themselves run in :func:`dpmia_utils.attacks.attack_targets`; the stage adds what
the run cost in memory, as the target record does.
"""

from __future__ import annotations

from typing import Any

from .resources import peak_rss_mb


def attack_record(outcome: Any) -> dict[str, Any]:
    """The attack stage's results record from an ``attacks.AttackOutcome``."""
    record = outcome.record()
    record["info"]["peak_rss_mb"] = peak_rss_mb()
    return record
