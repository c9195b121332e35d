"""Which steps get an execution environment: the python-backend steps, read from config.pbtxt.

`validate --json` is how the Pants plugin learns it, so the plugin and the engine apply one rule.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tritonbuild.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "tiny_pipeline"


def test_python_steps_come_from_the_config_not_from_file_names(tmp_path: Path) -> None:
    model = tmp_path / "tiny_pipeline"
    shutil.copytree(FIXTURE, model)
    # A python step whose code is not called model.py ...
    (model / "preprocess/1/model.py").rename(model / "preprocess/1/text_length.py")
    config = model / "preprocess/config.pbtxt"
    config.write_text(config.read_text() + 'default_model_filename: "text_length.py"\n')
    # ... and an ONNX step with a stray model.py beside its weights.
    scorer = model / "scorer"
    (scorer / "1").mkdir(parents=True)
    (scorer / "config.pbtxt").write_text(
        'backend: "onnxruntime"\nmax_batch_size: 4\n'
        'input [ { name: "X" data_type: TYPE_FP32 dims: [ 2 ] } ]\n'
        'output [ { name: "Y" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
    )
    (scorer / "1/model.onnx").write_bytes(b"\x08\x07weights")
    (scorer / "1/model.py").write_text("print('not a python-backend step')\n")
    report = tmp_path / "validation.json"

    assert main(["validate", str(model), "--json", str(report)]) == 0

    summary = json.loads(report.read_text())
    assert sorted(summary[str(model)]["python_steps"]) == ["postprocess", "preprocess"]
