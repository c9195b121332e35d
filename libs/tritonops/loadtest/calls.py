"""One request of the load: a case of a model, sent, timed, classified, sometimes checked.

An answer that a check finds wrong is an error like any other (WRONG), never a success. Each
case's body is encoded once, when the caller is made, and only the answers that are checked
are decoded: the generator's CPU per request bounds the rate one process can offer. An
unchecked answer is still a success only when it is a 200 with a KServe v2 content type.
"""

from __future__ import annotations

import itertools
import random
import time
from typing import Any

from tritonops.loadtest.measure import CONNECTION, OK, WRONG, Sample
from tritonops.loadtest.traffic import TrafficMix

from tritonlib.cases import Case, compare, format_result
from tritonlib.client import (
    TIMEOUT_STATUS,
    ClientError,
    EncodedRequest,
    InferenceClient,
    InferenceRejectedError,
    ResponseFormatError,
    RetriesExhaustedError,
    SageMakerRuntimeClient,
)

__all__ = ["Caller", "check_case", "error_kind"]

TIMEOUT = "timeout"


def error_kind(error: Exception) -> str:
    """A short label for a failed request: the endpoint's error code, or how the call failed."""
    if isinstance(error, RetriesExhaustedError):
        if error.status is None:
            return CONNECTION
        return TIMEOUT if error.status == TIMEOUT_STATUS else error.status
    if isinstance(error, InferenceRejectedError):
        return error.status or "rejected"
    if isinstance(error, ResponseFormatError):
        return "bad-response"
    if isinstance(error, ClientError):
        return error.status or type(error).__name__
    return type(error).__name__


def check_case(client: InferenceClient, target_model: str, case: Case) -> str | None:
    """Send ``case`` once and compare every expected output; None when right, else why not."""
    try:
        outputs = client.infer(target_model, case.input_arrays())
    except ClientError as error:
        return str(error)
    result = compare(case, outputs)
    return None if result.passed else format_result(result)


class Caller:
    """Sends the mix's requests: picks a model by weight and one of its cases, and checks the
    answer of a ``check_fraction`` of them against the case."""

    def __init__(
        self,
        client: SageMakerRuntimeClient,
        mix: TrafficMix,
        check_fraction: float,
        seed: int | None,
    ) -> None:
        self.client = client
        self.mix = mix
        self.check_fraction = check_fraction
        self.rng = random.Random(seed)
        self._indices = list(range(len(mix.models)))
        self._cum_weights = list(itertools.accumulate(mix.weights))
        self._requests: list[tuple[tuple[Case, EncodedRequest], ...]] = [
            tuple(
                (case, client.encode(model.target_model, case.input_arrays()))
                for case in model.cases
            )
            for model in mix.models
        ]

    def call(self) -> Sample:
        index = self.rng.choices(self._indices, cum_weights=self._cum_weights)[0]
        case, request = self.rng.choice(self._requests[index])
        checked = self.rng.random() < self.check_fraction
        start = time.time()
        began = time.perf_counter()
        try:
            answer = self.client.send(request)
        except Exception as error:  # every failure is a sample, never a crashed caller
            latency = (time.perf_counter() - began) * 1000
            return Sample(start, latency, error_kind(error), index, False, str(error)[:500])
        latency = (time.perf_counter() - began) * 1000
        if not checked:
            return Sample(start, latency, OK, index, False)
        try:
            outputs = answer.decode()
        except ClientError as error:
            return Sample(start, latency, error_kind(error), index, True, str(error)[:500])
        result = compare(case, outputs)
        if result.passed:
            return Sample(start, latency, OK, index, True)
        return Sample(start, latency, WRONG, index, True, format_result(result)[:500])

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def describe_sample(sample: Sample, mix: TrafficMix) -> dict[str, Any]:
        return {**sample._asdict(), "model": mix.names[sample.model]}
