"""Model Explorer overlays from a session: every node of the plan, keyed by the ids the ONNX
adapter gives the exported TensorRT file, with the values of the session's state."""
import json

import numpy as np
import onnx
import pytest

import tiny_models
from workbench.errors import WorkbenchError
from workbench.export.explorer_overlay import explorer_node_ids
from workbench.session import Session


def _session(tmp_path):
    model = tiny_models.save(tiny_models.small_cnn(size=16), tmp_path / "m.onnx")
    data = tmp_path / "data"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):
        np.save(data / f"{i}.npy", rng.standard_normal((3, 16, 16)).astype(np.float32))
    return Session(model, data, method="minmax", batch_size=4, project=tmp_path / "proj")


def test_explorer_export_matches_the_exported_file(tmp_path):
    s = _session(tmp_path)
    with pytest.raises(WorkbenchError, match="(?i)calibrate first"):
        s.export("explorer")
    s.calibrate()
    s.set_precision("conv2", "fp16")
    s.rebuild()
    first = s.export("explorer")
    assert first.name == "m.quant.explorer.precision.json"
    qdq = onnx.load(str(s.export("qdq")))
    ids = set(explorer_node_ids(qdq))
    by_metric = {m: json.loads((first.parent / f"m.quant.explorer.{m}.json").read_text())
                 for m in ("precision", "sqnr_db", "input_amax")}
    precision = by_metric["precision"]["results"]
    assert set(precision) <= ids and precision["conv2"]["value"] == "fp16" and precision["conv1"]["value"] == "int8"
    sqnr = by_metric["sqnr_db"]["results"]
    per_layer = dict(zip(s.history[-1].per_layer["node"], s.history[-1].per_layer["sqnr_db"]))
    assert set(sqnr) <= ids and sqnr["conv1"]["value"] == pytest.approx(per_layer["conv1"])
    amax = by_metric["input_amax"]["results"]
    assert amax["conv1"]["value"] == pytest.approx(s.ranges[s.tensor_of("conv1")].amax)
    # a second export into the project replaces its own files; outside it an existing file is refused
    s.export("explorer")
    s.export("explorer", tmp_path / "elsewhere.explorer.precision.json")
    with pytest.raises(WorkbenchError, match="already exist"):
        s.export("explorer", tmp_path / "elsewhere.explorer.precision.json")
