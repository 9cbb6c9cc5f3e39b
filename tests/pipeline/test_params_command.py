"""`python -m dpmia_utils params`: one run's notebook parameters, for papermill -f.

Executed by hand with those parameters, the two run notebooks reproduce the runner's record
of that run (the smoke grid's), which is what the Binder one-liner promises.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dpmia_utils.cli import main
from dpmia_utils.pipeline.profiles import load_profile

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "parameters" / "smoke.yml"
PICK = ["--group", "dp", "--where", "model=lasso"]  # the smoke grid's 5-epoch DP Lasso


def test_params_writes_the_runners_parameters_of_exactly_one_run(tmp_path, capsys):
    out = tmp_path / "run.yml"
    assert main(["params", str(SMOKE), *PICK, "-o", str(out)]) == 0
    profile = load_profile(SMOKE)
    (spec,) = profile.matching({"model": "lasso"}, ["dp"])
    assert yaml.safe_load(out.read_text()) == profile.notebook_parameters(spec)
    assert spec.params["epochs"] == 5 and spec.params["dp"] is True
    # Several runs, none, or an unknown name: one line saying so, exit code 2, nothing written.
    for args, message in [
        (["--where", "model=lasso"], "runs match, not one"),
        (["--where", "model=forest"], "0 runs match"),
        (["--where", "colour=red"], "names no run parameter"),
    ]:
        capsys.readouterr()
        assert main(["params", str(SMOKE), *args]) == 2
        assert message in capsys.readouterr().err


@pytest.mark.timeout(600)
def test_notebooks_run_by_hand_with_them_reproduce_the_runners_record(smoke_grid, tmp_path):
    _, store = smoke_grid
    params = tmp_path / "run.yml"
    assert main(["params", str(SMOKE), *PICK, "-o", str(params)]) == 0
    wanted = yaml.safe_load(params.read_text())["run"]
    records = [json.loads(p.read_text()) for p in (store / "runs").glob("*/record.json")]
    (record,) = [r for r in records if r["params"] == wanted]

    results = tmp_path / "results"
    env = {**os.environ, "DPMIA_RESULTS_DIR": str(results), "PYTHONPATH": str(REPO)}
    for stage in ("02_target_training", "03_membership_inference"):
        subprocess.run(
            [sys.executable, "-m", "papermill", str(REPO / "notebooks" / f"{stage}.ipynb")]
            + [str(tmp_path / f"{stage}.ipynb"), "-f", str(params), "--no-progress-bar"],
            check=True,
            env=env,
            cwd=tmp_path,
            capture_output=True,
        )
    scratch = results / "smoke" / "scratch"
    target = json.loads((scratch / "target.json").read_text())
    attack = json.loads((scratch / "attack.json").read_text())
    for key in ("fold_test_accuracy", "fold_train_accuracy", "epsilon", "steps"):
        assert target[key] == record["target"][key], key
    assert attack["attacks"] == record["attack"]["attacks"]
