"""Moving code must not move numbers: the smoke grid against the numbers it gave before the
package was reorganised (issue 12), recorded in smoke_golden.json.

Accuracies and AUCs are counts over 200 evaluation rows, so a float difference in another CPU's
kernels can flip a prediction: they may differ by at most 2 rows (0.01); epsilons are pure
numpy and must agree to 1e-9 relative; steps are exact.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dpmia_utils.pipeline.store import ProfileStore

GOLDEN = json.loads((Path(__file__).with_name("smoke_golden.json")).read_text())["runs"]
COUNT_TOLERANCE = 0.01


def _records(root: Path) -> dict[str, dict]:
    store = ProfileStore(root)
    records = {}
    for rid in store.complete_run_ids():
        record = store.load_record(rid)
        params = record["params"]
        records[f"{record['group']}/{params['model']}/dp={params['dp']}"] = record
    return records


def test_smoke_numbers_unchanged_by_the_reorganisation(smoke_grid):
    _, root = smoke_grid
    records = _records(root)
    assert set(GOLDEN) <= set(records)  # runs added since (dp-longer) have no golden
    for key, golden in GOLDEN.items():
        target, expected = records[key]["target"], golden["target"]
        assert target["steps"] == expected["steps"], key
        assert target["test_accuracy_mean"] == pytest.approx(
            expected["test_accuracy_mean"], abs=COUNT_TOLERANCE
        ), key
        for name in ("fold_test_accuracy", "fold_train_accuracy"):
            assert target[name] == pytest.approx(expected[name], abs=COUNT_TOLERANCE), (key, name)
        assert target["nonzero_fraction_mean"] == pytest.approx(expected["nonzero_fraction_mean"])
        assert target["epsilon"] == pytest.approx(expected["epsilon"], rel=1e-9), key
        for attack, metrics in golden["attack"].items():
            got = records[key]["attack"]["attacks"][attack]["metrics"]
            for metric, values in metrics.items():
                assert got[metric]["values"] == pytest.approx(values, abs=COUNT_TOLERANCE), (
                    key,
                    attack,
                    metric,
                )
