"""Grid profiles: the committed ones expand as documented; malformed ones fail clearly."""

import pytest

from dpmia_utils.paths import parameters_dir
from dpmia_utils.pipeline.profiles import load_profile, parse_profile, run_id
from dpmia_utils.stages.params import GridError, resolve_parameters

MINIMAL = """
profile: t
data: {source: synthetic}
groups:
  - model: lasso
"""


def test_paper_profile_is_the_papers_grid():
    profile = load_profile(parameters_dir() / "paper.yml")
    dp = [r.params for r in profile.runs if r.params["dp"]]
    assert len(dp) == 2 * 2 * 5 * 2 * 2  # epochs x batch x noise x lambda x model
    assert {p["noise_multiplier"] for p in dp} == {0.4, 0.6, 0.8, 1.0, 1.2}
    assert {(p["epochs"], p["batch_size"]) for p in dp} == {(50, 8), (50, 16), (100, 8), (100, 16)}
    baselines = [r.params for r in profile.runs if not r.params["dp"]]
    assert {(p["model"], p["l1"]) for p in baselines} == {
        ("lasso", 0.0),
        ("lasso", 0.001352),
        ("cnn", 0.0),
        ("cnn", 0.001352),
    }
    assert profile.blocks["split"]["folds"] == 5 and profile.blocks["attack"]["repeats"] == 5


@pytest.mark.parametrize(
    "name",
    [
        "smoke",
        "quick",
        "table1",
        "table1-ablation",
        "paper",
        "paper-cnn-search",
        "clip-ablation",
        "full",
    ],
)
def test_committed_profiles_are_valid_and_have_distinct_runs(name):
    profile = load_profile(parameters_dir() / f"{name}.yml")
    ids = {run_id(r.params, profile.blocks, "data", "code") for r in profile.runs}
    assert len(ids) == len(profile.runs) > 0


def test_run_id_changes_with_parameters_data_and_code_only():
    params = parse_profile(MINIMAL).runs[0].params
    base = run_id(params, {}, "d1", "c1")
    assert base == run_id(dict(params), {}, "d1", "c1")
    assert base != run_id({**params, "l1": 0.5}, {}, "d1", "c1")
    assert base != run_id(params, {}, "d2", "c1")
    assert base != run_id(params, {}, "d1", "c2")


def test_run_id_leaves_out_what_only_picks_the_raw_data():
    # The data checksum names the raw data by content: where it lies, or the synthetic
    # recipe's size, must not rename (and so rerun) a run; what is done with it must.
    profile = parse_profile(MINIMAL)
    params, blocks = profile.runs[0].params, profile.blocks
    base = run_id(params, blocks, "d1", "c1")
    for key, value in (("data_dir", "/elsewhere"), ("synthetic_samples", 999)):
        moved = {**blocks, "data": {**blocks["data"], key: value}}
        assert run_id(params, moved, "d1", "c1") == base, key
    for key, value in (("trait", "Zeocin"), ("max_variants", 50), ("seed", 1)):
        changed = {**blocks, "data": {**blocks["data"], key: value}}
        assert run_id(params, changed, "d1", "c1") != base, key


def test_notebook_parameters_resolve_exactly_as_a_profiles():
    text = MINIMAL + "    search: {epochs: [2, 4], batch_size: [8, 16]}\n"
    profile = parse_profile(text)
    blocks, params = resolve_parameters(
        data={"source": "synthetic"},
        run={"model": "lasso", "search": {"epochs": [2, 4], "batch_size": [8, 16]}},
    )
    assert blocks == profile.blocks and params == profile.runs[0].params
    assert list(params["search"]) == ["batch_size", "epochs"]  # sorted, as YAML gives them
    with pytest.raises(GridError, match="notebook parameters: run: 'batch_size' must be int"):
        resolve_parameters(run={"batch_size": 2.5})
    with pytest.raises(GridError, match="larger than the smallest training set"):
        resolve_parameters(
            data={"source": "synthetic", "synthetic_samples": 40}, run={"batch_size": 64}
        )


BAD_GRIDS = {
    "unknown-top-key": (
        "profile: t\ngrid: []\ngroups: [{model: lasso}]",
        "unknown key(s) ['grid']",
    ),
    "unknown-run-key": ("groups: [{model: lasso, nosie_multiplier: 1.0}]", "nosie_multiplier"),
    "unknown-block-key": (
        "data: {trait: CopperSulfate, traitt: x}\ngroups: [{model: lasso}]",
        "traitt",
    ),
    "empty-grid": ("profile: t\ngroups: []", "empty grid"),
    "no-groups": ("profile: t", "empty grid"),
    "empty-axis": ("groups: [{model: lasso, epochs: []}]", "'epochs' is an empty list"),
    "wrong-type-batch": (
        "groups: [{model: lasso, batch_size: sixteen}]",
        "'batch_size' must be int",
    ),
    "bool-as-int": ("groups: [{model: lasso, epochs: true}]", "'epochs' must be int"),
    "float-epochs": ("groups: [{model: lasso, epochs: 2.5}]", "'epochs' must be int"),
    "negative-noise": ("groups: [{model: lasso, dp: true, noise_multiplier: -1}]", "must be >= 0"),
    "unknown-model": ("groups: [{model: resnet}]", "'model' must be one of ['lasso', 'cnn']"),
    "dp-without-budget": ("groups: [{model: lasso, dp: true}]", "exactly one of"),
    "noise-without-dp": ("groups: [{model: lasso, noise_multiplier: 1.0}]", "dp is false"),
    "batch-larger-than-data": (
        "data: {source: synthetic, synthetic_samples: 40}\ngroups: [{model: lasso, batch_size: 64}]",
        "larger than the smallest training set",
    ),
    "not-a-mapping": ("- just\n- a list", "expected a mapping"),
    "bad-yaml": ("groups: [model: lasso", "not valid YAML"),
    "unknown-attack": ("attack: {attacks: [shadow, magic]}\ngroups: [{model: lasso}]", "magic"),
    "online-lira-is-gone": ("attack: {online: true}\ngroups: [{model: lasso}]", "['online']"),
    "microbatch-fraction": (
        "groups: [{model: lasso, microbatch_fraction: 2}]",
        "must be in (0, 1]",
    ),
    "duplicate-runs": ("groups: [{model: lasso}, {model: lasso}]", "appears twice"),
    "infinite-lr": ("groups: [{model: lasso, learning_rate: .inf}]", "must be finite"),
}


@pytest.mark.parametrize("text,expected", BAD_GRIDS.values(), ids=BAD_GRIDS.keys())
def test_malformed_grid_names_file_and_problem(text, expected, tmp_path):
    path = tmp_path / "mygrid.yml"
    path.write_text(text)
    with pytest.raises(GridError) as info:
        load_profile(path)
    assert "mygrid.yml" in str(info.value)
    assert expected in str(info.value)


def test_missing_profile_file_is_named(tmp_path):
    with pytest.raises(GridError, match="nope.yml: no such profile file"):
        load_profile(tmp_path / "nope.yml")


def test_where_picks_a_fixed_part_of_a_grid(tmp_path):
    from dpmia_utils.pipeline.grid import run_grid

    lines: list[str] = []
    report = run_grid(
        parameters_dir() / "paper.yml",
        results_root=tmp_path,
        dry_run=True,
        where={"l1": 0, "batch_size": 16},
        out=lines.append,
    )
    asked = [line for line in lines if line.startswith("  ") and "not asked" not in line]
    # A quarter of the 80 DP points (l1 = 0, batch 16: both models, both epochs, all noises)
    # and the two baselines at l1 = 0 (their batch size is searched; the default is 16).
    assert len(asked) == 22 and len(report.planned) == 84
    estimate = next(line for line in lines if line.startswith("estimated time"))
    assert "22 to execute" in lines[0] and "22 runs to execute" in estimate
    with pytest.raises(GridError, match="no run parameter"):
        run_grid(
            parameters_dir() / "paper.yml",
            results_root=tmp_path,
            dry_run=True,
            where={"noise": 1.0},
            out=lines.append,
        )


def test_paper_dp_lasso_points_are_selected_over_learning_rate_and_clip():
    profile = load_profile(parameters_dir() / "paper.yml")
    dp = [r.params for r in profile.runs if r.params["dp"]]
    lasso = [p for p in dp if p["model"] == "lasso"]
    assert len(lasso) == 40
    for p in lasso:
        # Not the microbatch fraction: microbatches of 2 are another privacy level.
        assert p["search"] == {"learning_rate": [0.01, 0.001], "l2_clip": [0.6, 1.0, 1.4, 1.8]}
        assert p["microbatch_fraction"] == 1.0
    # The CNN at the MIA scripts' values, not searched.
    for p in (p for p in dp if p["model"] == "cnn"):
        assert p["search"] is None
        assert (p["learning_rate"], p["l2_clip"], p["microbatch_fraction"]) == (0.01, 1.0, 1.0)
