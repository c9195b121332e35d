"""The check's outputs: a table for the terminal, a JSON report, a PNG per drifted feature.

Every output is written beside its final name and renamed into place, so a run that fails
half-way never leaves a half-written report that looks complete.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from tritonops.drift.check import DriftCheck, FeatureResult, ModelResult

from tritonlib.case_writer import write_atomically

__all__ = ["REPORT_FILE", "exit_code", "render_table", "report_json", "write_report"]

REPORT_FILE = "drift-report.json"
EXIT_OK, EXIT_DRIFT, EXIT_ERROR, EXIT_INCOMPLETE = 0, 1, 2, 3
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_BINS = 40
_CENTRAL_SHARE = 0.99  # the share of a numeric feature's values that sets a plot's range


def exit_code(check: DriftCheck) -> int:
    """1 on drift (alerts first); else 2 when a profile could not be read; else 3 when a model
    version could not be checked (no profile, too little data, no traffic); else 0."""
    if check.drift:
        return EXIT_DRIFT
    if check.errors:
        return EXIT_ERROR
    if check.incomplete:
        return EXIT_INCOMPLETE
    return EXIT_OK


def report_json(
    check: DriftCheck, plots: dict[tuple[str, str], str] | None = None
) -> dict[str, Any]:
    plots = plots or {}
    models = []
    for model in check.models:
        document = model.to_json()
        for feature in document["features"]:
            feature["plot"] = plots.get((model.target_model, feature["feature"]))
        models.append(document)
    return {
        "drift": check.drift,
        "exit_code": exit_code(check),
        "settings": check.settings.to_json(),
        "capture": check.capture.to_json(),
        "models": models,
    }


def write_report(check: DriftCheck, folder: Path) -> Path:
    """`<folder>/drift-report.json` and `<folder>/<model>_<version>/<feature>.png` per drift.

    Plots that the previous report in the folder listed are removed first, so the folder never
    shows a drift this run did not find.
    """
    folder.mkdir(parents=True, exist_ok=True)
    _remove_previous_plots(folder)
    plots: dict[tuple[str, str], str] = {}
    for model in check.models:
        for feature in model.features:
            if feature.drift:
                relative = f"{_safe(model.target_model.removesuffix('.tar.gz'))}/{_safe(feature.feature)}.png"
                plot_feature(model, feature, folder / relative)
                plots[(model.target_model, feature.feature)] = relative
    path = folder / REPORT_FILE
    text = json.dumps(report_json(check, plots), indent=2, sort_keys=False) + "\n"
    write_atomically(path, text.encode("utf-8"))
    return path


def _remove_previous_plots(folder: Path) -> None:
    try:
        previous = json.loads((folder / REPORT_FILE).read_text(encoding="utf-8"))
        listed = [f.get("plot") for m in previous.get("models", []) for f in m.get("features", [])]
    except (OSError, ValueError, AttributeError, TypeError):
        return
    for relative in listed:
        if isinstance(relative, str) and relative.endswith(".png") and ".." not in relative:
            (folder / relative).unlink(missing_ok=True)


def _safe(name: str) -> str:
    return _SAFE.sub("_", name).strip("_") or "feature"


# ----------------------------------------------------------------------------- terminal


def render_table(check: DriftCheck) -> str:
    """Per model version: its verdict, then one line per feature."""
    capture = check.capture
    lines = [
        f"captured traffic: {capture.source}",
        f"  {capture.files} files ({capture.files_outside_window} outside the window), "
        f"{capture.lines} lines, {capture.records} records",
    ]
    for label, tally in (
        ("malformed lines", capture.malformed),
        ("records without eventMetadata.targetModel", capture.unattributed),
    ):
        if tally.count:
            lines.append(f"  {tally.count} {label}; first: {_examples(tally.examples)}")
    settings = check.settings
    lines.append(
        f"threshold {settings.threshold} ({settings.correction} over each model's features), "
        f"sample {settings.sample_size} rows, at least {settings.min_rows}"
    )
    for model in check.models:
        lines.append("")
        lines.append(f"{model.target_model}: {model.status.upper()}: {model.message}")
        if model.profile is not None:
            lines.append(
                f"  {model.requests} requests, {model.rows} rows ({model.sampled_rows} sampled), "
                f"reference {model.profile}"
            )
        if model.undecodable.count:
            lines.append(
                f"  {model.undecodable.count} requests not usable; first: "
                f"{_examples(model.undecodable.examples)}"
            )
        if model.features:
            lines.extend("  " + line for line in _feature_table(model.features))
    if not check.models:
        lines.append("")
        lines.append("no captured requests to check: nothing was checked")
    return "\n".join(lines)


def _examples(examples: list[tuple[str, str]]) -> str:
    return "; ".join(f"{where}: {reason}" for where, reason in examples[:2])


def _feature_table(features: list[FeatureResult]) -> list[str]:
    header = ("feature", "test", "statistic", "p-value", "adjusted", "drift", "n", "missing")
    rows = [header]
    for feature in features:
        rows.append(
            (
                feature.feature,
                feature.test or "-",
                _number(feature.statistic),
                _number(feature.p_value),
                _number(feature.adjusted_p_value),
                "YES" if feature.drift else (feature.note or "no"),
                str(feature.current_values),
                str(feature.missing),
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    ]


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.3g}" if value >= 1e-3 or value == 0 else f"{value:.1e}"


# ----------------------------------------------------------------------------- plots


def plot_feature(model: ModelResult, feature: FeatureResult, path: Path) -> None:
    """Reference against current: histograms and ECDFs for a number, shares for a category."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    reference, current = feature.reference.present(), feature.current.present()
    figure = pyplot.figure(figsize=(10, 4), dpi=100)
    try:
        if feature.kind == "numeric":
            _numeric_panels(figure, reference.astype(float), current.astype(float))
        else:
            _category_panel(figure, list(reference), list(current))
        statistic = "KS distance D" if feature.test == "ks" else "chi-squared"
        figure.suptitle(
            f"{model.target_model}  {feature.feature}: {statistic}="
            f"{_number(feature.statistic)}, p={_number(feature.p_value)}, adjusted "
            f"{_number(feature.adjusted_p_value)} (drift)",
            fontsize=10,
        )
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        figure.savefig(temporary, format="png")
        temporary.replace(path)
    finally:
        pyplot.close(figure)


def _numeric_panels(
    figure: Any, reference: np.ndarray[Any, Any], current: np.ndarray[Any, Any]
) -> None:
    low, high = _plotted_range(np.concatenate([reference, current]))
    reference, current = (
        np.clip(values[np.isfinite(values)], low, high) for values in (reference, current)
    )
    both = np.concatenate([reference, current])
    edges = np.histogram_bin_edges(both, bins="auto", range=(low, high))
    if len(edges) - 1 > _MAX_BINS:
        edges = np.histogram_bin_edges(both, bins=_MAX_BINS, range=(low, high))
    left, right = figure.subplots(1, 2)
    left.hist(
        reference, bins=edges, density=True, alpha=0.5, label=f"reference (n={len(reference)})"
    )
    left.hist(current, bins=edges, density=True, alpha=0.5, label=f"current (n={len(current)})")
    left.set_title(f"distribution ({_CENTRAL_SHARE:.0%} of values; the rest at the edges)")
    left.legend()
    for values, label in ((reference, "reference"), (current, "current")):
        ordered = np.sort(values)
        right.step(
            ordered, np.arange(1, len(ordered) + 1) / len(ordered), where="post", label=label
        )
    right.set_title("cumulative share (KS: largest vertical gap)")
    right.legend()


def _plotted_range(values: np.ndarray[Any, Any]) -> tuple[float, float]:
    """The central values' range: one request with 1e38 in it must not squeeze the rest of the
    plot into one bin (or ask numpy for billions of bins)."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return 0.0, 1.0
    tail = (1 - _CENTRAL_SHARE) / 2
    low, high = (float(bound) for bound in np.quantile(finite, [tail, 1 - tail]))
    return (low, high) if high > low else (low - 0.5, low + 0.5)


def _category_panel(figure: Any, reference: list[Any], current: list[Any]) -> None:
    counts_reference, counts_current = Counter(reference), Counter(current)
    categories = sorted(set(counts_reference) | set(counts_current), key=str)
    positions = np.arange(len(categories))
    axis = figure.subplots(1, 1)
    width = 0.4
    axis.bar(
        positions - width / 2,
        [counts_reference[c] / max(len(reference), 1) for c in categories],
        width,
        label=f"reference (n={len(reference)})",
    )
    axis.bar(
        positions + width / 2,
        [counts_current[c] / max(len(current), 1) for c in categories],
        width,
        label=f"current (n={len(current)})",
    )
    axis.set_xticks(positions, [str(c) for c in categories], rotation=30)
    axis.set_ylabel("share of values")
    axis.legend()
