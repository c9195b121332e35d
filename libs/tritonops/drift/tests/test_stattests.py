"""The tests and corrections, on samples whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest
from tritonops.drift.stattests import chi_squared, correct, kolmogorov_smirnov


def test_ks_passes_the_same_distribution_and_flags_a_shift() -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(size=1000)
    same = kolmogorov_smirnov(reference, rng.normal(size=1000))
    shifted = kolmogorov_smirnov(reference, rng.normal(loc=0.5, size=1000))
    assert same.test == "ks" and same.p_value > 0.05
    assert shifted.p_value < 1e-10
    assert 0.1 < shifted.statistic < 0.3  # the ECDF gap of a 0.5 SD shift is about 0.2


def test_chi_squared_compares_category_shares() -> None:
    reference = ["a"] * 500 + ["b"] * 300 + ["c"] * 200
    same = chi_squared(reference, ["a"] * 50 + ["b"] * 30 + ["c"] * 20)
    moved = chi_squared(reference, ["a"] * 20 + ["b"] * 30 + ["c"] * 50)
    new_category = chi_squared(reference, ["a"] * 90 + ["d"] * 10)
    assert same.test == "chi2" and same.p_value > 0.9 and same.statistic == pytest.approx(0.0)
    assert moved.p_value < 1e-10
    assert new_category.p_value < 1e-10  # a value the reference never had
    assert chi_squared(["a"] * 10, ["a"] * 10).p_value == 1.0


def test_bonferroni_multiplies_by_the_number_of_features() -> None:
    adjusted, drift = correct([0.001, 0.004, 0.5], "bonferroni", 0.01)
    assert adjusted == pytest.approx([0.003, 0.012, 1.0])
    assert drift == [True, False, False]


def test_fdr_is_benjamini_hochberg() -> None:
    adjusted, drift = correct([0.001, 0.004, 0.5], "fdr", 0.01)
    assert adjusted == pytest.approx([0.003, 0.006, 0.5])
    assert drift == [True, True, False]
    assert correct([], "fdr", 0.01) == ([], [])
    with pytest.raises(ValueError, match="unknown correction"):
        correct([0.1], "holm", 0.01)  # type: ignore[arg-type]
