"""What the load is made of: a weighted mix of models, each request one of its test cases.

An MME's scaling metric sums the invocations of every model, so the load mixes TargetModels
(equal weights unless told otherwise). Every request body is one of the model's own cases, so
each is valid, and its expected outputs say whether an answer under load is right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tritonlib.cases import Case, CaseError, load_cases
from tritonlib.model_folder import VERSION_FILE, read_model_folder

__all__ = ["ModelTraffic", "TrafficError", "TrafficMix", "load_mix", "parse_model_weight"]


class TrafficError(ValueError):
    """A model that cannot be load-tested; the message names it and says what to do."""


@dataclass(frozen=True)
class ModelTraffic:
    """One model of the mix: its TargetModel, its share of the requests, its cases."""

    name: str
    target_model: str
    weight: float
    cases: tuple[Case, ...]


@dataclass(frozen=True)
class TrafficMix:
    models: tuple[ModelTraffic, ...]

    @property
    def names(self) -> list[str]:
        return [model.name for model in self.models]

    @property
    def weights(self) -> list[float]:
        return [model.weight for model in self.models]

    def shares(self) -> dict[str, float]:
        total = sum(self.weights)
        return {model.name: model.weight / total for model in self.models}

    def describe(self) -> str:
        equal = len(set(self.weights)) == 1
        parts = [
            f"{m.target_model} ({len(m.cases)} cases)" + ("" if equal else f" x{m.weight:g}")
            for m in self.models
        ]
        return ", ".join(parts) + (" in equal shares" if equal else " by weight")


def parse_model_weight(text: str) -> tuple[str, float]:
    """``NAME`` or ``NAME=WEIGHT`` (a positive number; default 1)."""
    name, separator, weight_text = text.partition("=")
    if not name:
        raise TrafficError(f"--model {text!r}: write NAME or NAME=WEIGHT, e.g. add_sub=2")
    if not separator:
        return name, 1.0
    try:
        weight = float(weight_text)
    except ValueError:
        weight = math.nan
    if not math.isfinite(weight) or weight <= 0:
        raise TrafficError(f"--model {text!r}: the weight must be a positive number")
    return name, weight


def load_mix(models_dir: Path, selection: Sequence[tuple[str, float]]) -> TrafficMix:
    """The mix of ``selection`` (every model folder of ``models_dir`` when empty), checked
    whole: every problem of every model is reported at once, before anything is sent."""
    if not models_dir.is_dir():
        raise TrafficError(f"{models_dir}: no such models folder (give --models-dir)")
    available = sorted(
        p.name for p in models_dir.iterdir() if p.is_dir() and (p / VERSION_FILE).is_file()
    )
    chosen = list(selection) or [(name, 1.0) for name in available]
    if not chosen:
        raise TrafficError(f"{models_dir}: no model folders (none has a {VERSION_FILE})")
    problems = []
    models = []
    seen: set[str] = set()
    for name, weight in chosen:
        if name in seen:
            problems.append(f"model {name!r} is named twice; give it once, with its weight")
            continue
        seen.add(name)
        if name not in available:
            problems.append(
                f"unknown model {name!r}: no folder {models_dir / name} with a {VERSION_FILE} "
                f"(models: {', '.join(available) or 'none'})"
            )
            continue
        try:
            models.append(_model_traffic(models_dir / name, weight))
        except TrafficError as error:
            problems.append(str(error))
    if problems:
        raise TrafficError("\n".join(problems))
    return TrafficMix(tuple(models))


def _model_traffic(folder: Path, weight: float) -> ModelTraffic:
    model = read_model_folder(folder)
    if model.version is None:
        raise TrafficError(f"model {model.name!r}: {model.version_file} {model.version_error}")
    entry = model.entry_point
    if entry is None:
        raise TrafficError(
            f"model {model.name!r}: cannot tell which step SageMaker serves "
            f"(run `./pants package-triton {folder}::` for the reason)"
        )
    try:
        cases = load_cases(model.cases_dir)
    except CaseError as error:
        if not model.cases_dir.is_dir():
            cases = []
        else:
            raise TrafficError(f"model {model.name!r}: {error}") from None
    # TargetModel runs the entry point: cases of an inner step cannot be sent through it.
    served = tuple(case for case in cases if case.model in (None, entry.name))
    if not served:
        inner = len(cases) - len(served)
        why = f" ({inner} address inner steps, which TargetModel cannot reach)" if inner else ""
        raise TrafficError(
            f"model {model.name!r} has no cases to send: no *.json case for its entry point in "
            f'{model.cases_dir}{why}; add one (README, "Test cases") or leave the model out'
        )
    return ModelTraffic(model.name, model.archive_name, weight, served)
