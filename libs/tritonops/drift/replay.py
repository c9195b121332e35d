"""Replay a model's traffic to an endpoint: its cases, then rows like its reference profile.

The rows are drawn (seeded, with replacement) from the model's own reference profile, so
without a shift they are the traffic the model was made for; `shifts` move a numeric input's
every element by a number of its reference standard deviations, the kind of drift the check
must flag. Requests go through `tritonlib.client.SageMakerRuntimeClient`, that is unchanged
boto3 `invoke_endpoint`, to a SageMaker endpoint or the local one (`--endpoint-url`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tritonlib.cases import CaseError, load_case
from tritonlib.client import ClientError, SageMakerRuntimeClient
from tritonlib.model_folder import ModelFolder
from tritonlib.profiles import ReferenceProfile

__all__ = ["ReplayError", "Replayed", "reference_requests", "replay"]


class ReplayError(Exception):
    """The replay cannot run or a request failed: the message says which and why."""


@dataclass(frozen=True)
class Replayed:
    target_model: str
    cases: int
    rows: int


def reference_requests(
    profile: ReferenceProfile, rows: int, seed: int, shifts: Mapping[str, float]
) -> Iterator[dict[str, NDArray[Any]]]:
    """`rows` requests of one row each, drawn from the profile's sample, shifted as asked; a
    shift the profile cannot take is refused here, before anything is sent."""
    for name in shifts:
        if name not in profile.samples:
            known = ", ".join(sorted(profile.samples))
            raise ReplayError(f"--shift {name}: the profile has no input {name!r} ({known})")
        if not np.issubdtype(profile.samples[name].dtype, np.number):
            raise ReplayError(f"--shift {name}: only numeric inputs can be shifted")
    moved: dict[str, NDArray[Any]] = {}
    for name, sample in profile.samples.items():
        if name in shifts:
            spread = sample.astype(np.float64).std(axis=0)
            sample = (sample + shifts[name] * spread).astype(sample.dtype)
        moved[name] = sample
    picked = np.random.default_rng(seed).integers(0, profile.rows, size=rows)
    return _requests(moved, picked, profile.batched)


def _requests(
    samples: Mapping[str, NDArray[Any]], picked: NDArray[Any], batched: bool
) -> Iterator[dict[str, NDArray[Any]]]:
    for index in picked:
        row = {name: sample[index] for name, sample in samples.items()}
        yield {name: value[np.newaxis] for name, value in row.items()} if batched else row


def replay(
    client: SageMakerRuntimeClient,
    model: ModelFolder,
    profile: ReferenceProfile,
    *,
    rows: int,
    seed: int = 0,
    shifts: Mapping[str, float] | None = None,
) -> Replayed:
    """Send the cases of the model's entry point (a model may have none), then `rows`
    reference-like requests."""
    if model.version is None:
        raise ReplayError(f"{model.version_file}: {model.version_error}")
    target = model.archive_name
    try:
        cases = [
            case
            for case in map(load_case, model.case_files)
            if case.model in (None, profile.entry_point)
        ]
    except CaseError as error:
        raise ReplayError(str(error)) from None
    requests = reference_requests(profile, rows, seed, shifts or {})
    sent_cases = 0
    sent_rows = 0
    try:
        for case in cases:
            client.infer(target, case.input_arrays())
            sent_cases += 1
        for request in requests:
            client.infer(target, request)
            sent_rows += 1
    except ClientError as error:
        raise ReplayError(
            f"{target}: request {sent_cases + sent_rows + 1} failed after {sent_cases} cases "
            f"and {sent_rows} rows: {error}"
        ) from None
    return Replayed(target, sent_cases, sent_rows)
