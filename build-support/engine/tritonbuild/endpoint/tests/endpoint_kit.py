"""What the endpoint's tests share: test archives, AWS clients on the endpoint, metrics."""

from __future__ import annotations

import io
import json
import tarfile
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from prometheus_client.parser import text_string_to_metric_families

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "AKIDENDPOINTTESTS", "aws_secret_access_key": "endpoint-tests"}


def runtime_client(url: str) -> Any:
    """Unchanged boto3, pointed at the endpoint; botocore's retries off so each call is one."""
    return boto3.client(
        "sagemaker-runtime",
        endpoint_url=url,
        region_name=REGION,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=120),
        **CREDENTIALS,
    )


def json_body(values: list[float]) -> bytes:
    return json.dumps(
        {"inputs": [{"name": "X", "shape": [len(values)], "datatype": "FP32", "data": values}]}
    ).encode("utf-8")


def outputs(body: bytes) -> list[float]:
    document = json.loads(body)
    return [float(v) for v in document["outputs"][0]["data"]]


def metrics(url: str) -> dict[tuple[str, str], float]:
    """Every sample of /metrics by (sample name, TargetModel)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as reply:
        text = reply.read().decode("utf-8")
    samples: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "le" in sample.labels or "quantile" in sample.labels:
                continue
            key = (sample.name, sample.labels.get("TargetModel", ""))
            samples[key] = samples.get(key, 0.0) + sample.value
    return samples


ENV_AT_ROOT = "$$TRITON_MODEL_DIRECTORY/../python_env.tar.gz"

STEP_CONFIG = """name: "{name}"
backend: "{backend}"
max_batch_size: 0
input [{{ name: "X" data_type: TYPE_FP32 dims: [ {dims} ] }}]
output [{{ name: "Y" data_type: TYPE_FP32 dims: [ {dims} ] }}]
parameters: {{ key: "EXECUTION_ENV_PATH", value: {{ string_value: "{env}" }} }}
"""

ENSEMBLE_CONFIG = """name: "{name}"
platform: "ensemble"
max_batch_size: 0
input [{{ name: "X" data_type: TYPE_FP32 dims: [ {dims} ] }}]
output [{{ name: "Y" data_type: TYPE_FP32 dims: [ {dims} ] }}]
ensemble_scheduling {{ step [ {{ model_name: "{step}" model_version: -1
  input_map {{ key: "X" value: "X" }} output_map {{ key: "Y" value: "Y" }} }} ] }}
"""

# Y = 2 X; a negative X is answered with the step's own error; X[0] > 100 sleeps X[0] - 100
# seconds (a long request); `initialize` waits SLEEP_S, holds BALLAST_MIB of memory, and with
# OUT_OF_MEMORY fails the way a model that cannot get its memory does.
DOUBLER_PY = """import time

import numpy as np
import triton_python_backend_utils as pb_utils

SLEEP_S = {sleep_s}
BALLAST_MIB = {ballast_mib}
OUT_OF_MEMORY = {out_of_memory}


class TritonPythonModel:
    def initialize(self, args):
        time.sleep(SLEEP_S)
        if OUT_OF_MEMORY:
            raise MemoryError("out of memory: the test model asks for more than there is")
        self.ballast = b"x" * (BALLAST_MIB << 20)

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
            if (x < 0).any():
                error = pb_utils.TritonError(f"negative input {{x.tolist()}}: the doubler takes x >= 0")
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            if x.size and x.flat[0] > 100:
                time.sleep(float(x.flat[0]) - 100)
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x * 2)]))
        return responses
"""


def doubler_files(
    sleep_s: float = 0.0,
    ballast_mib: int = 0,
    backend: str = "python",
    out_of_memory: bool = False,
    dims: int = -1,
) -> dict[str, str]:
    """The doubler's model folder: an ensemble over one python step taking X of `dims`
    elements (-1: any number), its env expected at the root."""
    return {
        "pipeline/config.pbtxt": ENSEMBLE_CONFIG.format(name="pipeline", step="doubler", dims=dims),
        "pipeline/1/.keep": "",
        "doubler/config.pbtxt": STEP_CONFIG.format(
            name="doubler", backend=backend, env=ENV_AT_ROOT, dims=dims
        ),
        "doubler/1/model.py": DOUBLER_PY.format(
            sleep_s=sleep_s, ballast_mib=ballast_mib, out_of_memory=out_of_memory
        ),
    }


def doubler_archive(path: Path, env: Path, **options: Any) -> Path:
    """`<name>_<version>.tar.gz`: the doubler's folder (`doubler_files(**options)`) and its env
    at the root."""
    files: Mapping[str, str | Path] = {**doubler_files(**options), "python_env.tar.gz": env}
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, content in sorted(files.items()):
            if isinstance(content, Path):
                tar.add(content, arcname=name)
                continue
            data = content.encode("utf-8")
            member = tarfile.TarInfo(name)
            member.size = len(data)
            member.mode = 0o644
            tar.addfile(member, io.BytesIO(data))
    return path


def build_python_env(folder: Path) -> Path:
    """A real, relocatable Python 3.10 env with numpy, made by the engine's env builder."""
    from tritonbuild.envbuild import build_env

    requirements = folder / "requirements.txt"
    requirements.write_text("numpy==1.26.4\n", encoding="utf-8")
    output = folder / "python_env.tar.gz"
    build_env(output, "3.10", requirements=requirements, first_party=[], log=lambda _: None)
    return output
