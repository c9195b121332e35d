"""The sweep as a picture: latency percentiles and throughput against the offered load, the SLO
line, and the chosen point."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

from tritonops.loadtest.measure import StepResult
from tritonops.loadtest.settings import SweepSettings

__all__ = ["write_plot"]


def write_plot(
    path: Path,
    steps: Sequence[StepResult],
    settings: SweepSettings,
    chosen: StepResult | None,
    title: str,
) -> None:
    """A PNG with two panels sharing the offered rate as x axis; written whole or not at all."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ordered = sorted(steps, key=lambda s: s.planned_rps)
    offered = [s.planned_rps for s in ordered]
    figure, (latency_axis, rate_axis) = plt.subplots(
        2, 1, sharex=True, figsize=(9, 7.5), gridspec_kw={"height_ratios": [3, 2]}
    )
    for percentile, style in ((50, "o-"), (90, "s-"), (99, "^-")):
        values = [s.percentile_ms(percentile) for s in ordered]
        points = [(x, y) for x, y in zip(offered, values) if y is not None]
        if points:
            latency_axis.plot(*zip(*points), style, label=f"p{percentile}", markersize=4)
    slo = settings.slo
    latency_axis.axhline(slo.ms, color="crimson", linestyle="--", label=f"SLO {slo.label}")
    failed = [s for s in ordered if s.verdict != "pass"]
    for step in failed:
        latency_axis.axvline(step.planned_rps, color="grey", alpha=0.25, linewidth=6)
    latency_axis.set_ylabel("latency (ms, log scale)")
    latency_axis.set_yscale("log")
    latency_axis.grid(True, which="both", alpha=0.3)

    rate_axis.plot(offered, [s.throughput_rps for s in ordered], "o-", label="correct answers/s")
    rate_axis.plot(offered, [s.offered_rps for s in ordered], ".:", label="requests sent/s")
    top = max(offered) if offered else 1.0
    rate_axis.plot([0, top], [0, top], color="grey", alpha=0.4, label="throughput = offered")
    rate_axis.set_xlabel("offered load (requests/s, Poisson arrivals)")
    rate_axis.set_ylabel("requests/s")
    rate_axis.grid(True, alpha=0.3)

    if chosen is not None:
        measured = chosen.percentile_ms(slo.percentile)
        if measured is not None:
            latency_axis.plot(
                [chosen.planned_rps],
                [measured],
                "*",
                color="gold",
                markersize=18,
                markeredgecolor="black",
                label=f"chosen: MAX_RPS {chosen.throughput_rps:.1f}",
            )
        rate_axis.plot(
            [chosen.planned_rps],
            [chosen.throughput_rps],
            "*",
            color="gold",
            markersize=18,
            markeredgecolor="black",
        )
        rate_axis.annotate(
            f"MAX_RPS {chosen.throughput_rps:.1f}",
            (chosen.planned_rps, chosen.throughput_rps),
            textcoords="offset points",
            xytext=(8, -14),
        )
    latency_axis.legend(loc="upper left", fontsize="small")
    rate_axis.legend(loc="upper left", fontsize="small")
    latency_axis.set_title(title, fontsize="medium")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(handle)
    try:
        figure.savefig(temporary, dpi=110)
        os.replace(temporary, path)
    finally:
        plt.close(figure)
        if os.path.exists(temporary):
            os.unlink(temporary)
