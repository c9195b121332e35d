"""Traffic for the demo model of these tests: rows drawn like its reference, as capture lines."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from tritonops.drift.testing import capture_line, write_capture_file

from tritonlib.profiles import FeatureSpec, write_profile

MODEL = "demo"
VERSION = 2
TARGET = f"{MODEL}_{VERSION}.tar.gz"
COLOURS = ("red", "green", "blue")
COLOUR_SHARES = (0.5, 0.3, 0.2)
HOUR = datetime(2026, 11, 28, 10, tzinfo=timezone.utc)
CONFIG = """
name: "demo"
backend: "python"
max_batch_size: 8
input [
  { name: "X" data_type: TYPE_FP32 dims: [ 3 ] },
  { name: "RECORD" data_type: TYPE_STRING dims: [ 1 ] }
]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] } ]
"""


@dataclass(frozen=True)
class Loaded:
    """A model folder and its entry point, as the profile writer needs them."""

    model_dir: Path
    entry_point: str


def draw(
    rows: int, seed: int, shift: float = 0.0, colours: tuple[float, ...] = COLOUR_SHARES
) -> dict[str, NDArray[Any]]:
    """Rows of the demo model's inputs: X ~ N(0, 1) (X[1] shifted by `shift` SDs), a record
    with size ~ N(10, 2) and a colour."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 3)).astype(np.float32)
    x[:, 1] += shift
    sizes = rng.normal(10, 2, size=rows)
    picked = rng.choice(COLOURS, size=rows, p=colours)
    records = [
        json.dumps({"size": float(size), "colour": str(colour)}).encode()
        for size, colour in zip(sizes, picked)
    ]
    return {"X": x, "RECORD": np.array(records, dtype=np.object_).reshape(-1, 1)}


def requests(rows: dict[str, NDArray[Any]], batch: int = 4) -> Iterator[dict[str, NDArray[Any]]]:
    count = len(rows["X"])
    for start in range(0, count, batch):
        yield {name: array[start : start + batch] for name, array in rows.items()}


def capture_lines(rows: dict[str, NDArray[Any]], target: str = TARGET, batch: int = 4) -> list[str]:
    """Alternating binary+json and JSON requests, as clients would mix them."""
    return [
        capture_line(request, target, content_type="binary" if index % 2 else "json")
        for index, request in enumerate(requests(rows, batch))
    ]


def write_models(root: Path) -> Path:
    """models/demo at version 2 with a profile of 1000 rows; models/plain without one."""
    demo = root / MODEL
    (demo / MODEL / "1").mkdir(parents=True)
    (demo / MODEL / "config.pbtxt").write_text(CONFIG, encoding="utf-8")
    (demo / "model_version.txt").write_text(f"{VERSION}\n", encoding="utf-8")
    write_profile(
        Loaded(demo, MODEL),
        draw(1000, seed=0),
        description="demo rows: X ~ N(0, 1), size ~ N(10, 2), colours 50/30/20",
        written_by=demo / "train.py",
        features={
            "RECORD": FeatureSpec("json_fields", {"fields": ["size"], "categories": ["colour"]})
        },
    )
    plain = root / "plain"
    (plain / "plain" / "1").mkdir(parents=True)
    (plain / "plain" / "config.pbtxt").write_text(CONFIG.replace("demo", "plain"))
    (plain / "model_version.txt").write_text("1\n", encoding="utf-8")
    return root


def write_traffic(capture_dir: Path, lines: list[str], hour: datetime = HOUR) -> Path:
    return write_capture_file(capture_dir, lines, hour=hour, endpoint="demo-endpoint")
