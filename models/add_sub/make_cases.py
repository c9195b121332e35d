"""Writes tests/cases/*.json: inputs chosen here, expected outputs computed by numpy.

Run: `./pants run models/add_sub/make_cases.py`.
"""

import json
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from tritonlib import profiles, training
from tritonlib.harness import Pipeline

CASES_DIR = Path(__file__).resolve().parent / "tests" / "cases"

INPUTS = {
    "small_integers": ([1, 2, 3, 4], [4, 3, 2, 1]),
    "negatives_and_fractions": ([-1.5, 0.25, -0.125, 8.0], [0.5, -0.25, 0.125, -8.0]),
    "zeros": ([0, 0, 0, 0], [0, 0, 0, 0]),
    "large_values": ([1e30, -1e30, 1.5e38, 1e-30], [1e30, 1e30, -1.5e38, -1e-30]),
}


def tensor(values: NDArray[np.float32]) -> dict[str, object]:
    return {"datatype": "FP32", "shape": list(values.shape), "data": values.tolist()}


def main() -> None:
    CASES_DIR.mkdir(parents=True, exist_ok=True)
    for name, (first, second) in INPUTS.items():
        in0 = np.asarray(first, dtype=np.float32)
        in1 = np.asarray(second, dtype=np.float32)
        case = {
            "inputs": {"INPUT0": tensor(in0), "INPUT1": tensor(in1)},
            "expected": {"OUTPUT0": tensor(in0 + in1), "OUTPUT1": tensor(in0 - in1)},
        }
        path = CASES_DIR / f"{name}.json"
        path.write_text(json.dumps(case, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {path}")
    # The drift check's reference: the inputs this example expects, standard normal (seed 0).
    normal = np.random.default_rng(0).standard_normal((2, 1000, 4)).astype(np.float32)
    with Pipeline.load(CASES_DIR.parents[1]) as pipeline:
        profile = profiles.write_profile(
            pipeline,
            {"INPUT0": normal[0], "INPUT1": normal[1]},
            description="1000 requests, every element standard normal (seed 0)",
            written_by=__file__,
        )
    training.dvc_add(profile)


if __name__ == "__main__":
    main()
