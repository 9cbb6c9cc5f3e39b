"""Synthetic crosses have the linkage and genetic architecture they claim, in the real format."""

import zipfile

import numpy as np
import pytest

from dpmia_utils.data import MISSING, load_cross, load_trait, simulate_cross, write_cross


def _agreement_at_distance(cross, distance):
    """Share of equal alleles over pairs of variants `distance` apart on the same chromosome."""
    same_chrom = cross.chromosome_of_variant[:-distance] == cross.chromosome_of_variant[distance:]
    equal = cross.counts[:, :-distance] == cross.counts[:, distance:]
    return equal[:, same_chrom].mean()


@pytest.fixture(scope="module")
def linked_cross():
    return simulate_cross(600, 1200, 4, recombination_rate=0.02, seed=11)


def test_adjacent_variants_agree_at_one_minus_recombination_rate(linked_cross):
    # ~600 * 1196 adjacent pairs, each switching with prob 0.02: sd of the mean is ~0.0002.
    assert _agreement_at_distance(linked_cross, 1) == pytest.approx(0.98, abs=0.002)


@pytest.mark.parametrize("distance", [5, 20, 100])
def test_agreement_decays_as_a_two_state_markov_chain(linked_cross, distance):
    # Independent reference: P(same parent after d steps) = (1 + (1 - 2r)^d) / 2.
    expected = (1 + (1 - 2 * 0.02) ** distance) / 2
    assert _agreement_at_distance(linked_cross, distance) == pytest.approx(expected, abs=0.01)


def test_adjacent_agreement_is_far_above_distant_and_cross_chromosome(linked_cross):
    adjacent = _agreement_at_distance(linked_cross, 1)
    distant = _agreement_at_distance(linked_cross, 250)  # (1 + 0.96^250) / 2 ~ 0.50002
    first_chrom = linked_cross.counts[:, linked_cross.chromosome_of_variant == 0][:, 0]
    other_chrom = linked_cross.counts[:, linked_cross.chromosome_of_variant == 1][:, 0]
    unlinked = (first_chrom == other_chrom).mean()
    assert adjacent > 0.97
    assert abs(distant - 0.5) < 0.02
    assert abs(unlinked - 0.5) < 0.07  # 600 Bernoulli(1/2): 3.4 standard deviations


def test_allele_frequency_is_about_one_half(linked_cross):
    assert linked_cross.counts.mean() == pytest.approx(0.5, abs=0.02)
    assert set(np.unique(linked_cross.counts)) == {0, 1}


def test_zero_recombination_gives_one_haplotype_per_chromosome():
    cross = simulate_cross(50, 40, 2, recombination_rate=0.0, seed=3)
    for chrom in (0, 1):
        block = cross.counts[:, cross.chromosome_of_variant == chrom]
        assert np.all(block == block[:, :1])


def test_causal_variants_explain_the_stated_heritability():
    cross = simulate_cross(3000, 200, 4, n_causal=8, heritability=0.6, seed=5)
    causal = cross.causal_indices["1_CopperSulfate_1"]
    y = cross.phenotype
    design = np.column_stack([np.ones(y.size), 2.0 * cross.counts[:, causal] - 1.0])
    fitted = design @ np.linalg.lstsq(design, y, rcond=None)[0]
    r_squared = 1 - np.var(y - fitted) / np.var(y)
    # R^2 of the true causal set estimates h^2; sd ~0.01 at n = 3000, plus 8/3000 optimism.
    assert r_squared == pytest.approx(0.6, abs=0.04)


def test_causal_variants_correlate_with_the_phenotype_more_than_unlinked_ones():
    cross = simulate_cross(800, 400, 4, n_causal=6, heritability=0.8, seed=2)
    causal = cross.causal_indices["1_CopperSulfate_1"]
    causal_chroms = set(cross.chromosome_of_variant[causal])
    y = cross.phenotype

    def abs_corr(columns):
        return np.array([abs(np.corrcoef(cross.counts[:, j], y)[0, 1]) for j in columns])

    unlinked = [
        j for j in range(cross.n_variants) if cross.chromosome_of_variant[j] not in causal_chroms
    ]
    if unlinked:  # with 6 causal on 4 chromosomes every chromosome may carry one
        assert abs_corr(causal).mean() > 4 * abs_corr(unlinked).mean()
    far_from_causal = [j for j in range(cross.n_variants) if np.min(np.abs(causal - j)) > 60]
    assert abs_corr(causal).mean() > 3 * abs_corr(far_from_causal).mean()


def test_zero_heritability_phenotype_ignores_genotypes():
    cross = simulate_cross(2000, 50, 2, n_causal=5, heritability=0.0, seed=9)
    causal = cross.causal_indices["1_CopperSulfate_1"]
    r = [np.corrcoef(cross.counts[:, j], cross.phenotype)[0, 1] for j in causal]
    assert np.max(np.abs(r)) < 0.09  # 4.0 standard errors at n = 2000


def test_several_traits_have_their_own_causal_sets_and_missing_values():
    traits = ("1_CopperSulfate_1", "1_Zeocin_1")
    cross = simulate_cross(200, 300, 3, traits=traits, missing_fraction=0.1, seed=4)
    assert cross.traits == list(traits)
    for trait in traits:
        assert cross.phenotypes[trait].isna().sum() == 20
        assert cross.causal_indices[trait].size == 10
        assert np.unique(cross.causal_indices[trait]).size == 10
    a, b = (set(cross.causal_indices[t]) for t in traits)
    assert a != b
    # Missingness is drawn per trait, not shared.
    assert not cross.phenotypes[traits[0]].isna().equals(cross.phenotypes[traits[1]].isna())


def test_same_seed_same_cross_and_ids_have_the_published_shape():
    a, b, c = (simulate_cross(30, 60, 3, seed=s) for s in (1, 1, 2))
    assert np.array_equal(a.counts, b.counts) and a.phenotypes.equals(b.phenotypes)
    assert not np.array_equal(a.counts, c.counts)
    assert a.sample_ids[0] == "01_01" and len(set(a.sample_ids)) == 30
    assert len(set(a.variant_ids)) == 60
    pos, chrom, pos2, ref, alt = a.variant_ids[0].split("_")
    assert pos == pos2 and chrom == "chrI" and ref != alt and {ref, alt} <= set("ACGT")
    assert a.variant_ids[-1].split("_")[1] == "chrIII"
    serial = simulate_cross(5, 10, 1, seed=0, sample_id_style="serial")
    assert list(serial.sample_ids) == ["S0001", "S0002", "S0003", "S0004", "S0005"]


def test_written_files_match_the_published_layout(tmp_path):
    cross = simulate_cross(5, 8, 2, n_causal=2, traits=("1_CopperSulfate_1", "1_Zeocin_1"), seed=0)
    cross.phenotypes.iloc[2, 1] = np.nan
    archives = write_cross(cross, tmp_path)
    with zipfile.ZipFile(archives.genotype) as archive:
        assert sorted(archive.namelist()) == ["__MACOSX/._genotype_full.txt", "genotype_full.txt"]
        lines = archive.read("genotype_full.txt").decode().splitlines()
    assert lines[0].split("\t") == ["SAMID", *cross.variant_ids]
    first = lines[1].split("\t")
    assert first[0] == cross.sample_ids[0]
    assert first[1:] == ["1" if c == 1 else "-1" for c in cross.counts[0]]
    with zipfile.ZipFile(archives.phenotype) as archive:
        assert "__MACOSX/._phenotype.csv" in archive.namelist()
        text = archive.read("phenotype.csv").decode().splitlines()
    assert text[0] == ",1_CopperSulfate_1,1_Zeocin_1"
    assert text[3].split(",")[2] == "NA"


@pytest.mark.parametrize("coding", ["signed", "paper", "binary"])
@pytest.mark.parametrize("zipped", [True, False])
def test_write_then_load_cross_recovers_everything_exactly(tmp_path, coding, zipped):
    cross = simulate_cross(
        40,
        90,
        3,
        traits=("1_CopperSulfate_1", "1_Zeocin_1"),
        missing_fraction=0.1,
        seed=6,
        missing_genotype_fraction=0.02,
    )
    write_cross(cross, tmp_path, coding=coding, zipped=zipped)
    loaded = load_cross(tmp_path)
    assert loaded.genotypes.coding == coding
    assert np.array_equal(loaded.genotypes.counts, cross.counts)
    assert (loaded.genotypes.counts == MISSING).sum() == (cross.counts == MISSING).sum() > 0
    assert list(loaded.sample_ids) == list(cross.sample_ids)
    assert list(loaded.genotypes.variant_ids) == list(cross.variant_ids)
    assert np.array_equal(loaded.phenotypes.to_numpy(), cross.phenotypes.to_numpy(), equal_nan=True)


def test_load_trait_runs_on_a_synthetic_cross(tmp_path):
    cross = simulate_cross(120, 80, 2, missing_fraction=0.05, seed=8)
    write_cross(cross, tmp_path / "raw")
    prepared = load_trait("CopperSulfate", data_dir=tmp_path / "raw", cache_dir=tmp_path / "c")
    values = cross.phenotype
    kept = ~np.isnan(values)
    assert prepared.n_samples == kept.sum() == 114
    assert np.array_equal(prepared.labels, (values[kept] > values[kept].mean()).astype(np.int8))
    assert np.array_equal(prepared.features(), 2.0 * cross.counts[kept] - 1.0)
