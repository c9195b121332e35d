"""The statistical tests of the drift check, and the correction for testing many features.

The same tests, on the same terms, as Seldon's alibi-detect `KSDrift`, `ChiSquareDrift` and
`TabularDrift` (which call these scipy functions): a two-sample Kolmogorov-Smirnov test per
numeric feature (asymptotic p-value, two-sided), a chi-squared test of the reference and
current counts per categorical feature (over the categories either side has), and a
Bonferroni or Benjamini-Hochberg (FDR) correction over the features of one model version.
Why scipy directly and not alibi-detect: docs/drift.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from scipy import stats

__all__ = [
    "CORRECTIONS",
    "Correction",
    "Outcome",
    "chi_squared",
    "correct",
    "kolmogorov_smirnov",
]

Correction = Literal["bonferroni", "fdr"]
CORRECTIONS: tuple[Correction, ...] = ("bonferroni", "fdr")


@dataclass(frozen=True)
class Outcome:
    """One test's result: its name, its statistic (a distance for KS) and its p-value."""

    test: str
    statistic: float
    p_value: float


def kolmogorov_smirnov(reference: NDArray[Any], current: NDArray[Any]) -> Outcome:
    """Two-sample KS on numeric values; the statistic is the largest gap between the ECDFs."""
    result = stats.ks_2samp(reference, current, alternative="two-sided", method="asymp")
    return Outcome("ks", float(result.statistic), float(result.pvalue))


def chi_squared(reference: Sequence[Any], current: Sequence[Any]) -> Outcome:
    """Chi-squared test of independence of side (reference/current) and category."""
    reference_counts, current_counts = Counter(reference), Counter(current)
    categories = sorted(set(reference_counts) | set(current_counts), key=str)
    if len(categories) < 2:  # one category on both sides: nothing can differ
        return Outcome("chi2", 0.0, 1.0)
    table = np.array(
        [
            [reference_counts[category] for category in categories],
            [current_counts[category] for category in categories],
        ]
    )
    result = stats.chi2_contingency(table)  # Yates' correction when 2 categories, as alibi
    return Outcome("chi2", float(result.statistic), float(result.pvalue))


def correct(
    p_values: Sequence[float], method: Correction, alpha: float
) -> tuple[list[float], list[bool]]:
    """Adjusted p-values and drift flags (adjusted p < alpha) over one model's features.

    Bonferroni bounds the chance of any false alarm by alpha; FDR (Benjamini-Hochberg) bounds
    the expected share of false alarms among the flagged features, and keeps more power when
    many features drift together.
    """
    if not p_values:
        return [], []
    values = np.asarray(p_values, dtype=np.float64)
    if method == "bonferroni":
        adjusted = np.minimum(values * len(values), 1.0)
    elif method == "fdr":
        adjusted = stats.false_discovery_control(values, method="bh")
    else:
        raise ValueError(f"unknown correction {method!r}; use one of {', '.join(CORRECTIONS)}")
    return [float(p) for p in adjusted], [bool(p < alpha) for p in adjusted]
