"""The data layer: codings, locating files, cross assembly, trait preparation and the cache."""

import gzip
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dpmia_utils import paths
from dpmia_utils.data import (
    MISSING,
    DataError,
    load_cross,
    load_trait,
    locate,
    locate_raw_data,
    parse_variant_ids,
    prepare_trait,
    read_genotypes,
    read_phenotypes,
    resolve_trait,
    simulate_cross,
    write_cross,
)

COUNTS = np.array([[0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1]], dtype=np.int8)
FILE_CODES = {"signed": {0: "-1", 1: "1"}, "paper": {0: "1", 1: "2"}, "binary": {0: "0", 1: "1"}}


def _genotype_file(path: Path, rows: list[list[str]], variants=None) -> Path:
    variants = variants or [
        f"{100 * (j + 1)}_chrI_{100 * (j + 1)}_A_T" for j in range(len(rows[0]))
    ]
    lines = ["\t".join(["SAMID", *variants])]
    lines += ["\t".join([f"s{i}", *row]) for i, row in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def no_default_locations(tmp_path, monkeypatch):
    """Point every implicit data location at empty folders so the real data is never found."""
    empty = tmp_path / "nowhere"
    empty.mkdir()
    monkeypatch.delenv("DPMIA_DATA_DIR", raising=False)
    monkeypatch.setattr(paths, "raw_data_dir", lambda: empty / "raw")
    monkeypatch.setattr(paths, "SHARED_DATA_DIR", empty / "shared")
    monkeypatch.setenv("DPMIA_DOWNLOAD_DIR", str(empty / "download"))
    return empty


# ------------------------------------------------------------------------------ codings


@pytest.mark.parametrize("coding", ["signed", "paper", "binary"])
def test_each_haploid_coding_parses_to_the_same_counts(tmp_path, coding):
    rows = [[FILE_CODES[coding][int(c)] for c in row] for row in COUNTS]
    path = _genotype_file(tmp_path / "g.txt", rows)
    for declared in ("auto", coding):
        table = read_genotypes(path, coding=declared)
        assert np.array_equal(table.counts, COUNTS)
        assert table.coding == coding and table.ploidy == 1
        assert table.counts.dtype == np.int8
    assert list(table.sample_ids) == ["s0", "s1", "s2"]


def test_dosage_coding_keeps_counts_and_is_diploid(tmp_path):
    dosage = np.array([[0, 1, 2], [2, 2, 0]], dtype=np.int8)
    path = _genotype_file(tmp_path / "g.txt", [[str(c) for c in row] for row in dosage])
    table = read_genotypes(path)
    assert table.coding == "dosage" and table.ploidy == 2
    assert np.array_equal(table.counts, dosage)
    # Declaring dosage on a 0/1-only file keeps 0/1 but as diploid counts.
    binary = _genotype_file(tmp_path / "b.txt", [["0", "1"], ["1", "1"]])
    assert read_genotypes(binary, coding="dosage").ploidy == 2
    assert read_genotypes(binary).coding == "binary"


def test_missing_cells_na_empty_and_declared_codes(tmp_path):
    path = _genotype_file(tmp_path / "g.txt", [["1", "NA", "-1"], ["", "-9", "1"]])
    table = read_genotypes(path, missing_codes=(-9,))
    expected = np.array([[1, MISSING, 0], [MISSING, MISSING, 1]], dtype=np.int8)
    assert np.array_equal(table.counts, expected)


def test_zip_gzip_and_plain_files_parse_identically(tmp_path):
    rows = [[FILE_CODES["signed"][int(c)] for c in row] for row in COUNTS]
    plain = _genotype_file(tmp_path / "genotype_full.txt", rows)
    with zipfile.ZipFile(tmp_path / "genotype_full.txt.zip", "w") as archive:
        archive.writestr("__MACOSX/._genotype_full.txt", b"\x00\x05\x16\x07junk")
        archive.write(plain, "genotype_full.txt")
    (tmp_path / "genotype_full.txt.gz").write_bytes(gzip.compress(plain.read_bytes()))
    for name in ("genotype_full.txt", "genotype_full.txt.zip", "genotype_full.txt.gz"):
        assert np.array_equal(read_genotypes(tmp_path / name).counts, COUNTS)


def test_fast_and_careful_parsers_agree(tmp_path):
    rows = [[FILE_CODES["signed"][int(c)] for c in row] for row in COUNTS]
    fast = _genotype_file(tmp_path / "fast.txt", rows)
    # Padding with spaces and a "+1" token forces the line-by-line parser.
    careful_rows = [[f" {t} " if t == "-1" else "+1" for t in row] for row in rows]
    careful = _genotype_file(tmp_path / "careful.txt", careful_rows)
    assert np.array_equal(read_genotypes(fast).counts, read_genotypes(careful).counts)


def test_features_reproduce_the_published_plus_minus_one_coding(tmp_path):
    cross = simulate_cross(30, 40, 2, n_causal=3, seed=1)
    write_cross(cross, tmp_path / "raw", zipped=False)
    prepared = load_trait(data_dir=tmp_path / "raw", cache=False, progress=False)
    lines = (tmp_path / "raw" / "genotype_full.txt").read_text().splitlines()[1:]
    by_id = {line.split("\t")[0]: [float(t) for t in line.split("\t")[1:]] for line in lines}
    expected = np.array([by_id[s] for s in prepared.sample_ids], dtype=np.float32)
    assert np.array_equal(prepared.features(), expected)
    assert prepared.features(np.float64).dtype == np.float64


def test_dosage_features_are_count_minus_one(tmp_path):
    rng = np.random.default_rng(0)
    dosage = rng.integers(0, 3, size=(20, 5))
    dosage[0] = [0, 1, 2, 0, 1]
    raw = tmp_path / "raw"
    raw.mkdir()
    _genotype_file(raw / "genotype_full.txt", [[str(c) for c in row] for row in dosage])
    values = np.linspace(-1, 1, 20)
    pd.DataFrame({"1_CopperSulfate_1": values}, index=[f"s{i}" for i in range(20)]).to_csv(
        raw / "phenotype.csv"
    )
    prepared = load_trait(data_dir=raw, cache=False, progress=False)
    assert prepared.ploidy == 2
    assert np.array_equal(prepared.features(), dosage - 1.0)


# ------------------------------------------------------------------------------ phenotypes


def test_read_phenotypes_parses_na_and_empty_as_nan(tmp_path):
    path = tmp_path / "phenotype.csv"
    path.write_text(",1_A_1,1_B_1\nx,1.5,NA\ny,,-2e-3\n")
    frame = read_phenotypes(path)
    assert list(frame.index) == ["x", "y"] and list(frame.columns) == ["1_A_1", "1_B_1"]
    assert frame.loc["x", "1_A_1"] == 1.5 and frame.loc["y", "1_B_1"] == -0.002
    assert frame.isna().to_numpy().tolist() == [[False, True], [True, False]]
    assert frame.dtypes.unique().tolist() == [np.float64]


# ------------------------------------------------------------------------------ cross assembly


def _write_pair(folder: Path, geno_ids, pheno_ids, n_variants=6, seed=0):
    """Genotypes for geno_ids and one trait for pheno_ids; returns (counts by id, values by id)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    counts = {s: rng.integers(0, 2, n_variants) for s in geno_ids}
    values = {s: float(v) for s, v in zip(pheno_ids, rng.normal(size=len(pheno_ids)), strict=False)}
    variants = [f"v{j}" for j in range(n_variants)]
    lines = ["\t".join(["SAMID", *variants])]
    lines += ["\t".join([s, *("1" if c else "-1" for c in counts[s])]) for s in geno_ids]
    (folder / "genotype_full.txt").write_text("\n".join(lines) + "\n")
    rows = [",1_CopperSulfate_1"] + [f"{s},{values[s]!r}" for s in pheno_ids]
    (folder / "phenotype.csv").write_text("\n".join(rows) + "\n")
    return counts, values


def test_phenotypes_are_aligned_to_genotype_order_by_id(tmp_path):
    ids = [f"{i:02d}_01" for i in range(12)]
    shuffled = list(np.random.default_rng(3).permutation(ids))
    counts, values = _write_pair(tmp_path, ids, shuffled)
    cross = load_cross(tmp_path)
    assert list(cross.sample_ids) == ids
    assert cross.phenotypes["1_CopperSulfate_1"].tolist() == [values[s] for s in ids]
    assert np.array_equal(cross.genotypes.counts, np.array([counts[s] for s in ids]))


def test_partial_overlap_is_an_error_unless_allowed(tmp_path):
    geno_ids = ["a", "b", "c", "d", "e", "f"]
    pheno_ids = ["f", "d", "b", "x", "y", "a"]
    counts, values = _write_pair(tmp_path, geno_ids, pheno_ids)
    with pytest.raises(DataError) as error:
        load_cross(tmp_path)
    message = str(error.value)
    assert "2 only in genotypes" in message and "2 only in phenotypes" in message
    assert "4 in both" in message and "'c'" in message and "'x'" in message
    cross = load_cross(tmp_path, allow_partial_overlap=True)
    assert list(cross.sample_ids) == ["a", "b", "d", "f"]  # genotype-file order
    assert cross.phenotypes["1_CopperSulfate_1"].tolist() == [values[s] for s in "abdf"]
    assert np.array_equal(cross.genotypes.counts, np.array([counts[s] for s in "abdf"]))
    assert cross.overlap == {
        "n_genotype_samples": 6,
        "n_phenotype_samples": 6,
        "n_both": 4,
        "n_only_genotypes": 2,
        "n_only_phenotypes": 2,
    }
    prepared = prepare_trait(cross)
    assert prepared.provenance["overlap"]["n_both"] == 4
    assert prepared.provenance["n_samples_raw"] == 4


def test_disjoint_ids_are_an_error_even_when_partial_overlap_is_allowed(tmp_path):
    _write_pair(tmp_path, ["a", "b"], ["c", "d"])
    with pytest.raises(DataError, match="share no sample IDs"):
        load_cross(tmp_path, allow_partial_overlap=True)


# ------------------------------------------------------------------------------ traits


@pytest.mark.parametrize(
    "name",
    ["1_CopperSulfate_1", "CopperSulfate", "coppersulfate", "COPPERSULFATE", "1_coppersulfate_1"],
)
def test_trait_names_resolve_to_the_column(name):
    columns = ["1_CobaltChloride_1", "1_CopperSulfate_1", "1_Zeocin_1"]
    assert resolve_trait(name, columns) == "1_CopperSulfate_1"


def test_unknown_trait_lists_the_short_names():
    with pytest.raises(DataError) as error:
        resolve_trait("Copper", ["1_CobaltChloride_1", "1_CopperSulfate_1"], source="p.csv")
    assert "unknown trait 'Copper'" in str(error.value)
    assert "CobaltChloride, CopperSulfate" in str(error.value) and "p.csv" in str(error.value)


def test_ambiguous_short_name_is_an_error():
    with pytest.raises(DataError, match="ambiguous"):
        resolve_trait("Zeocin", ["1_Zeocin_1", "2_Zeocin_2"])


@pytest.fixture
def small_cross(tmp_path):
    cross = simulate_cross(
        300,
        50,
        2,
        n_causal=5,
        traits=("1_CopperSulfate_1", "1_Zeocin_1"),
        missing_fraction=0.1,
        seed=7,
    )
    write_cross(cross, tmp_path / "raw")
    return cross, load_cross(tmp_path / "raw")


def test_missing_phenotypes_are_dropped_and_counted(small_cross):
    truth, cross = small_cross
    prepared = prepare_trait(cross, "CopperSulfate")
    kept = ~truth.phenotypes["1_CopperSulfate_1"].isna().to_numpy()
    assert prepared.provenance["n_missing_phenotype"] == 30
    assert prepared.provenance["n_dropped"] == 30
    assert prepared.provenance["n_samples_raw"] == 300
    assert prepared.n_samples == 270 and prepared.n_variants == 50
    assert list(prepared.sample_ids) == list(truth.sample_ids[kept])
    assert np.array_equal(prepared.genotypes, truth.counts[kept])
    assert not np.isnan(prepared.phenotype).any()


@pytest.mark.parametrize("rule", ["mean", "median", "threshold"])
def test_binarization_rules(small_cross, rule):
    truth, cross = small_cross
    values = truth.phenotypes["1_Zeocin_1"].dropna().to_numpy()
    cut = {"mean": values.mean(), "median": np.median(values), "threshold": 0.5}[rule]
    prepared = prepare_trait(
        cross, "Zeocin", binarize=rule, threshold=0.5 if rule == "threshold" else None
    )
    assert prepared.threshold == pytest.approx(cut)
    assert np.array_equal(prepared.labels, (values > cut).astype(np.int8))
    assert prepared.labels.dtype == np.int8
    assert prepared.provenance["class_counts"] == {
        "0": int((values <= cut).sum()),
        "1": int((values > cut).sum()),
    }


def test_threshold_needs_the_threshold_rule(small_cross):
    _, cross = small_cross
    with pytest.raises(ValueError, match="threshold"):
        prepare_trait(cross, threshold=0.2)
    with pytest.raises(ValueError, match="threshold"):
        prepare_trait(cross, binarize="threshold")


def test_balancing_downsamples_the_majority_without_replacement(small_cross):
    _, cross = small_cross
    full = prepare_trait(cross, binarize="threshold", threshold=-0.5)  # ~70/30 split
    minority = int(full.labels.sum() > full.n_samples / 2) ^ 1
    n_minority = int((full.labels == minority).sum())
    balanced = prepare_trait(cross, binarize="threshold", threshold=-0.5, balance=True, seed=3)
    assert np.bincount(balanced.labels).tolist() == [n_minority, n_minority]
    assert len(set(balanced.sample_ids)) == balanced.n_samples  # no individual twice
    assert set(balanced.sample_ids) <= set(full.sample_ids)
    kept_minority = set(full.sample_ids[full.labels == minority])
    assert kept_minority <= set(balanced.sample_ids)  # the minority class is kept whole
    assert balanced.provenance["n_dropped_balance"] == full.n_samples - 2 * n_minority
    # Rows stay matched to their individuals.
    index = {s: i for i, s in enumerate(full.sample_ids)}
    rows = [index[s] for s in balanced.sample_ids]
    assert np.array_equal(balanced.genotypes, full.genotypes[rows])
    assert np.array_equal(balanced.labels, full.labels[rows])
    again = prepare_trait(cross, binarize="threshold", threshold=-0.5, balance=True, seed=3)
    other = prepare_trait(cross, binarize="threshold", threshold=-0.5, balance=True, seed=4)
    assert np.array_equal(again.sample_ids, balanced.sample_ids)
    assert not np.array_equal(other.sample_ids, balanced.sample_ids)


def test_missing_calls_are_imputed_with_the_per_variant_mode(tmp_path):
    rows = [
        ["1", "NA", "-1"],
        ["1", "-1", "NA"],
        ["NA", "-1", "1"],
        ["-1", "1", "1"],
        ["1", "NA", "-1"],
    ]
    raw = tmp_path / "raw"
    raw.mkdir()
    _genotype_file(raw / "genotype_full.txt", rows)
    (raw / "phenotype.csv").write_text(
        ",1_CopperSulfate_1\n" + "".join(f"s{i},{i}\n" for i in range(5))
    )
    prepared = prepare_trait(load_cross(raw))
    # Per-variant modes (ties to the smaller count): column 0 -> 1, column 1 -> 0, column 2 -> 0.
    expected = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 1], [0, 1, 1], [1, 0, 0]], dtype=np.int8)
    assert np.array_equal(prepared.genotypes, expected)
    assert prepared.provenance["n_imputed"] == 4
    with pytest.raises(DataError, match="4 genotype calls are missing"):
        prepare_trait(load_cross(raw), impute="none")


def test_parse_variant_ids_handles_the_published_form_and_others():
    frame = parse_variant_ids(
        ["33070_chrI_33070_A_T", "chrII:500", "chrXVI_12_G_C", "rs12345", "garbage_x"]
    )
    assert frame["chromosome"].tolist()[:3] == ["chrI", "chrII", "chrXVI"]
    assert frame["position"].tolist()[:3] == [33070.0, 500.0, 12.0]
    assert frame.loc[0, "ref"] == "A" and frame.loc[0, "alt"] == "T"
    assert np.isnan(frame.loc[3, "position"]) and pd.isna(frame.loc[3, "chromosome"])
    assert np.isnan(frame.loc[4, "position"])
    assert frame["position"].dtype == np.float64


# ------------------------------------------------------------------------------ locating files


def test_locate_order_data_dir_then_env_then_repo_then_shared(tmp_path, monkeypatch):
    cross = simulate_cross(10, 12, 2, n_causal=2, seed=0)
    folders = {}
    for name in ("explicit", "env", "raw", "shared"):
        folders[name] = tmp_path / name
        write_cross(cross, folders[name], zipped=(name != "env"))
    monkeypatch.setattr(paths, "raw_data_dir", lambda: folders["raw"])
    monkeypatch.setattr(paths, "SHARED_DATA_DIR", folders["shared"])
    # The synthetic zips are not the published ones: skip the canonical checksum check here.
    monkeypatch.setattr(locate, "ARCHIVE_SHA256", {})
    monkeypatch.setenv("DPMIA_DATA_DIR", str(folders["env"]))

    assert locate_raw_data(folders["explicit"]).genotype.parent == folders["explicit"]
    found = locate_raw_data()
    assert found.genotype == folders["env"] / "genotype_full.txt"  # unzipped files accepted
    monkeypatch.delenv("DPMIA_DATA_DIR")
    assert locate_raw_data().genotype == folders["raw"] / "genotype_full.txt.zip"
    monkeypatch.setattr(paths, "raw_data_dir", lambda: tmp_path / "absent")
    assert locate_raw_data().phenotype == folders["shared"] / "phenotype.csv.zip"


def test_explicit_folder_without_the_files_does_not_fall_through(tmp_path, monkeypatch):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "genotype_full.txt").write_text("SAMID\tv\ns\t1\n")
    with pytest.raises(DataError, match="lacks phenotype.csv.zip or phenotype.csv"):
        locate_raw_data(tmp_path / "half")
    monkeypatch.setenv("DPMIA_DATA_DIR", str(tmp_path / "half"))
    with pytest.raises(DataError, match=r"\$DPMIA_DATA_DIR"):
        locate_raw_data()


def test_canonical_archive_with_wrong_checksum_is_rejected(
    tmp_path, monkeypatch, no_default_locations
):
    shared = tmp_path / "shared"
    archives = write_cross(simulate_cross(10, 12, 2, n_causal=2, seed=0), shared)
    monkeypatch.setattr(paths, "SHARED_DATA_DIR", shared)
    actual = hashlib.sha256(archives.genotype.read_bytes()).hexdigest()
    with pytest.raises(DataError) as error:
        locate_raw_data()
    message = str(error.value)
    assert "genotype_full.txt.zip" in message and "checksum mismatch" in message
    assert actual in message and locate.ARCHIVE_SHA256["genotype_full.txt.zip"] in message


def _fake_downloader(payloads: dict[str, bytes], calls: list[str]):
    def factory(progress):
        def download(url, output_file, pooch_instance):
            calls.append(url)
            Path(output_file).write_bytes(payloads[url.rsplit("/", 1)[-1]])

        return download

    return factory


def test_download_fetches_verifies_and_reuses(tmp_path, monkeypatch, no_default_locations):
    source = write_cross(simulate_cross(10, 12, 2, n_causal=2, seed=0), tmp_path / "upstream")
    payloads = {p.name: p.read_bytes() for p in (source.genotype, source.phenotype)}
    checksums = {name: hashlib.sha256(b).hexdigest() for name, b in payloads.items()}
    monkeypatch.setattr(locate, "ARCHIVE_SHA256", checksums)
    calls: list[str] = []
    monkeypatch.setattr(locate, "_make_downloader", _fake_downloader(payloads, calls))
    with pytest.raises(DataError, match="download=False"):
        locate_raw_data(download=False)
    found = locate_raw_data()
    assert found.genotype == no_default_locations / "download" / "genotype_full.txt.zip"
    assert found.genotype.read_bytes() == payloads["genotype_full.txt.zip"]
    assert calls == [locate.UPSTREAM_BASE_URL + n for n in checksums]
    locate_raw_data()  # pooch reuses verified files: no second download
    assert len(calls) == 2
    assert locate_raw_data(download=False) == found


def test_truncated_download_fails_verification(tmp_path, monkeypatch, no_default_locations):
    source = write_cross(simulate_cross(10, 12, 2, n_causal=2, seed=0), tmp_path / "upstream")
    payloads = {p.name: p.read_bytes() for p in (source.genotype, source.phenotype)}
    checksums = {name: hashlib.sha256(b).hexdigest() for name, b in payloads.items()}
    monkeypatch.setattr(locate, "ARCHIVE_SHA256", checksums)
    truncated = {n: b[: len(b) // 2] for n, b in payloads.items()}
    monkeypatch.setattr(locate, "_make_downloader", _fake_downloader(truncated, []))
    with pytest.raises(DataError) as error:
        locate_raw_data()
    message = str(error.value)
    assert "genotype_full.txt.zip" in message and "failed verification" in message
    assert checksums["genotype_full.txt.zip"] in message and "truncated" in message
    assert not (no_default_locations / "download" / "genotype_full.txt.zip").exists()


def test_download_without_network_is_a_data_error(monkeypatch, no_default_locations):
    def offline(progress):
        def download(url, output_file, pooch_instance):
            raise ConnectionError("network unreachable")

        return download

    monkeypatch.setattr(locate, "_make_downloader", offline)
    with pytest.raises(DataError, match="could not download genotype_full.txt.zip"):
        locate_raw_data()


# ------------------------------------------------------------------------------ the cache


@pytest.fixture
def synthetic_folder(tmp_path):
    cross = simulate_cross(150, 60, 3, n_causal=4, missing_fraction=0.05, seed=12)
    write_cross(cross, tmp_path / "raw")
    return tmp_path / "raw"


def _trait_files(cache_dir: Path) -> list[Path]:
    return sorted(cache_dir.glob("trait-*.npz"))


def _assert_same(a, b):
    for name in ("sample_ids", "variant_ids", "genotypes", "phenotype", "labels"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert getattr(a, name).dtype == getattr(b, name).dtype, name
    assert (a.threshold, a.trait, a.ploidy) == (b.threshold, b.trait, b.ploidy)
    assert a.provenance == b.provenance


def _forbid_parsing(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the raw files were parsed although the cache is warm")

    # Patched where load_trait's helpers look them up: the genotype cache and the cross.
    monkeypatch.setattr("dpmia_utils.data.cache.read_genotypes", refuse)
    monkeypatch.setattr("dpmia_utils.data.cross.read_genotypes", refuse)
    monkeypatch.setattr("dpmia_utils.data.cross.read_phenotypes", refuse)


def test_second_load_comes_from_the_cache(synthetic_folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_trait(data_dir=synthetic_folder, cache_dir=cache, progress=False)
    assert len(_trait_files(cache)) == 1
    _forbid_parsing(monkeypatch)
    second = load_trait("coppersulfate", data_dir=synthetic_folder, cache_dir=cache)
    _assert_same(first, second)
    assert (
        first.provenance["raw_files"]["genotype"]["sha256"]
        == hashlib.sha256((synthetic_folder / "genotype_full.txt.zip").read_bytes()).hexdigest()
    )


def test_the_cache_is_an_uncompressed_npz_written_atomically(synthetic_folder, tmp_path):
    cache = tmp_path / "cache"
    load_trait(data_dir=synthetic_folder, cache_dir=cache, progress=False)
    (path,) = _trait_files(cache)
    with zipfile.ZipFile(path) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}
    assert not list(cache.glob(".*tmp"))  # no temp files left behind


@pytest.mark.parametrize(
    "options",
    [
        {"binarize": "median"},
        {"binarize": "threshold", "threshold": 0.1},
        {"balance": True},
        {"balance": True, "seed": 1},
        {"coding": "signed"},
        {"trait": "1_Zeocin_1"},
    ],
)
def test_options_change_the_cache_key(tmp_path, options):
    cross = simulate_cross(
        80, 20, 2, n_causal=3, traits=("1_CopperSulfate_1", "1_Zeocin_1"), seed=1
    )
    write_cross(cross, tmp_path / "raw")
    cache = tmp_path / "cache"
    load_trait(data_dir=tmp_path / "raw", cache_dir=cache, progress=False)
    load_trait(data_dir=tmp_path / "raw", cache_dir=cache, progress=False, **options)
    assert len(_trait_files(cache)) == 2


def test_changed_raw_file_changes_the_cache_key(tmp_path):
    cache = tmp_path / "cache"
    cross = simulate_cross(80, 20, 2, n_causal=3, seed=1)
    write_cross(cross, tmp_path / "raw")
    before = load_trait(data_dir=tmp_path / "raw", cache_dir=cache, progress=False)
    cross.phenotypes.iloc[0, 0] = 99.0  # one outlier moves the mean
    write_cross(cross, tmp_path / "raw")
    after = load_trait(data_dir=tmp_path / "raw", cache_dir=cache, progress=False)
    assert len(_trait_files(cache)) == 2
    assert after.threshold != before.threshold


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "wrong_shapes"])
def test_corrupted_cache_file_is_rebuilt(synthetic_folder, tmp_path, monkeypatch, damage):
    cache = tmp_path / "cache"
    original = load_trait(data_dir=synthetic_folder, cache_dir=cache, progress=False)
    (path,) = _trait_files(cache)
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) * 2 // 3])
    elif damage == "garbage":
        middle = len(blob) // 2  # inside the genotype array: only the zip CRC can notice
        path.write_bytes(
            blob[:middle]
            + bytes(b ^ 0xFF for b in blob[middle : middle + 64])
            + blob[middle + 64 :]
        )
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        with np.load(path) as archive:
            arrays = dict(archive)
        arrays["labels"] = arrays["labels"][:-1]
        np.savez(path, **arrays)
    prepared_calls = []
    monkeypatch.setattr(
        "dpmia_utils.data.traits.prepare_trait",
        lambda *a, **k: prepared_calls.append(1) or prepare_trait(*a, **k),
    )
    rebuilt = load_trait(data_dir=synthetic_folder, cache_dir=cache, progress=False)
    assert prepared_calls == [1]
    _assert_same(original, rebuilt)
    _forbid_parsing(monkeypatch)  # and the rebuilt file is good again
    _assert_same(original, load_trait(data_dir=synthetic_folder, cache_dir=cache))


def test_corrupted_genotype_cache_is_reparsed(synthetic_folder, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    original = load_trait(data_dir=synthetic_folder, cache_dir=cache, progress=False)
    (genotype_cache,) = cache.glob("genotypes-*.npz")
    genotype_cache.write_bytes(genotype_cache.read_bytes()[:100])
    parses = []
    monkeypatch.setattr(  # the genotype cache parses on a miss
        "dpmia_utils.data.cache.read_genotypes",
        lambda *a, **k: parses.append(1) or read_genotypes(*a, **k),
    )
    median = load_trait(data_dir=synthetic_folder, cache_dir=cache, binarize="median")
    assert parses == [1]
    assert np.array_equal(median.genotypes, original.genotypes)


def test_cache_off_writes_nothing(synthetic_folder, tmp_path):
    load_trait(data_dir=synthetic_folder, cache=False, cache_dir=tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").iterdir())


# ------------------------------------------------------------------------------ the real data


@pytest.mark.realdata
@pytest.mark.skipif(
    not (paths.SHARED_DATA_DIR / "genotype_full.txt.zip").is_file(),
    reason=f"the real yeast archives are not at {paths.SHARED_DATA_DIR}",
)
def test_real_yeast_data(monkeypatch):
    monkeypatch.delenv("DPMIA_DATA_DIR", raising=False)
    shared = paths.SHARED_DATA_DIR
    sums = dict(
        reversed(line.split()) for line in (shared / "SHA256SUMS").read_text().splitlines() if line
    )
    assert locate.ARCHIVE_SHA256 == sums
    cross = load_cross(shared, cache=True)  # warm after the first run: data/cache
    assert cross.genotypes.counts.shape == (4390, 28220)
    assert cross.genotypes.coding == "signed"
    # Independent reader: pandas on the phenotype file, the first genotype row by hand.
    with zipfile.ZipFile(shared / "phenotype.csv.zip") as archive:
        phenotypes = pd.read_csv(archive.open("phenotype.csv"), index_col=0)
    copper = phenotypes["1_CopperSulfate_1"]
    assert copper.isna().sum() == 114
    with (
        zipfile.ZipFile(shared / "genotype_full.txt.zip") as archive,
        archive.open("genotype_full.txt") as handle,
    ):
        handle.readline()
        first = handle.readline().decode().rstrip("\n").split("\t")
    assert first[0] == cross.sample_ids[0] == phenotypes.index[0]
    assert np.array_equal(2 * cross.genotypes.counts[0] - 1, np.array(first[1:], dtype=int))

    prepared = load_trait("CopperSulfate", shared, progress=False)
    assert prepared.n_samples == 4276 and prepared.n_variants == 28220
    assert prepared.provenance["n_missing_phenotype"] == 114
    kept = copper.dropna()
    assert list(prepared.sample_ids) == [str(s) for s in kept.index]
    assert np.array_equal(prepared.labels, (kept.to_numpy() > kept.mean()).astype(np.int8))
    assert prepared.provenance["raw_files"]["genotype"]["sha256"] == sums["genotype_full.txt.zip"]


def test_bad_options_fail_before_any_parsing(synthetic_folder, tmp_path, monkeypatch):
    _forbid_parsing(monkeypatch)
    with pytest.raises(ValueError, match="binarize must be one of"):
        load_trait(data_dir=synthetic_folder, cache_dir=tmp_path / "c", binarize="meen")


def test_progress_is_shown_only_when_asked(synthetic_folder, tmp_path, capsys):
    load_trait(data_dir=synthetic_folder, cache_dir=tmp_path / "a", progress=False)
    assert "parsing genotypes" not in capsys.readouterr().err
    load_trait(data_dir=synthetic_folder, cache_dir=tmp_path / "b", progress=True)
    assert "parsing genotypes" in capsys.readouterr().err


@pytest.mark.parametrize("rule", ["mean", "median", "threshold"])
def test_values_equal_to_the_cut_are_class_zero(tmp_path, rule):
    raw = tmp_path / "raw"
    raw.mkdir()
    _genotype_file(raw / "genotype_full.txt", [["1", "-1"], ["-1", "1"], ["1", "1"], ["-1", "-1"]])
    # mean = median = 1.0: the paper's rule is strictly greater, so the two ties are class 0.
    (raw / "phenotype.csv").write_text(",1_CopperSulfate_1\ns0,0\ns1,1\ns2,1\ns3,2\n")
    threshold = 1.0 if rule == "threshold" else None
    prepared = prepare_trait(load_cross(raw), binarize=rule, threshold=threshold)
    assert prepared.threshold == 1.0
    assert prepared.labels.tolist() == [0, 0, 0, 1]
