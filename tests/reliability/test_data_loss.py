"""Never lose a user's file: nothing the user owns is replaced without an explicit overwrite,
in the API as in the CLI, and no output may resolve to an input.

Part of the reliability battery (issues 13 and 22); helpers in ``reliability_helpers``.
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

import tiny_models
from workbench.cli import main
from workbench.errors import WorkbenchError
from reliability_helpers import (LOADER_WAITS, REPO, Workspace, _mount, _no_collection, _photos, entries,  # noqa: F401
                                 err_of, leftovers, read_only_dir, run_cli, sha_tree, small_tmpfs, ws)


def test_evaluate_json_and_sensitivity_csv_never_replace_the_model(ws, capsys):
    cal = ws.calibrate()
    assert cal == 0
    assert main(["quantize", str(ws.model), "--data", str(ws.data), "--ranges", str(ws.root / "cal" / "ranges.json"),
                 "-o", str(ws.root / "q.onnx")]) == 0
    capsys.readouterr()
    ws.snap()
    code = main(["evaluate", str(ws.model), str(ws.root / "q.onnx"), "--data", str(ws.data),
                 "--json", str(ws.model), "--overwrite"])
    assert code == 2 and "Refusing to write" in err_of(capsys)
    code = main(["evaluate", str(ws.model), str(ws.root / "q.onnx"), "--data", str(ws.data),
                 "--json", str(ws.root / "q.onnx"), "--overwrite"])
    assert code == 2 and "the quantized model" in err_of(capsys)
    code = main(["sensitivity", str(ws.model), "--data", str(ws.data), "-q", "-o", str(ws.model), "--overwrite"])
    assert code == 2 and "the model" in err_of(capsys)
    # through a symlink and a hard link too
    (ws.root / "link.onnx").symlink_to(ws.model)
    os.link(ws.model, ws.root / "hard.onnx")
    ws.snap()
    for alias in ("link.onnx", "hard.onnx"):
        code = main(["sensitivity", str(ws.model), "--data", str(ws.data), "-q", "-o", str(ws.root / alias),
                     "--overwrite"])
        assert code == 2 and "Refusing to write" in err_of(capsys)
    ws.unchanged()


def test_session_exports_never_replace_an_input(ws):
    from workbench.session import Session

    s = Session(ws.model, ws.data, batch_size=2, project=ws.root / "proj")
    s.calibrate()
    ws.snap()
    for kind in ("ranges", "plan", "cache", "qdq"):
        with pytest.raises(WorkbenchError, match="Refusing to write"):
            s.export(kind, path=ws.model)
        with pytest.raises(WorkbenchError, match="inside the data folder"):
            s.export(kind, path=ws.data / f"x.{kind}")
    ws.unchanged()


def test_output_inside_the_data_folder_is_refused(ws, capsys):
    for out in ("data", "data/sub"):
        assert ws.calibrate(out=out) == 2
        assert "inside the data folder" in err_of(capsys)
    assert ws.calibrate("--overwrite", out="data") == 2
    assert "--overwrite never writes into an input" in err_of(capsys)
    ws.unchanged()
    assert ws.calibrate() == 0  # the data still reads


def _api_result(ws):
    """Model, ranges and default plan of the workspace, through the public API."""
    from workbench import ModelInfo, PrecisionPlan, collect_statistics, compute_ranges, open_data

    model = ModelInfo.from_path(ws.model)
    ranges = compute_ranges(collect_statistics(model, open_data(ws.data, model), progress=False), "minmax")
    return model, ranges, PrecisionPlan.default(model)


def test_api_exports_refuse_an_existing_path_by_default(ws):
    from workbench.export import export_model, export_result

    model, ranges, plan = _api_result(ws)
    export_result(model, ranges, plan, ws.root / "out" / "model")  # the README's example
    (ws.root / "mine.onnx").write_bytes(b"the user's own file")
    ws.snap()
    with pytest.raises(WorkbenchError, match="model.onnx.*already exist.*overwrite=True"):
        export_result(model, ranges, plan, ws.root / "out" / "model")  # ... run twice
    with pytest.raises(WorkbenchError, match="mine.onnx.*already exist"):
        export_model(model, ranges, plan, ws.root / "mine.onnx")
    ws.unchanged()
    export_result(model, ranges, plan, ws.root / "out" / "model", overwrite=True)  # said explicitly
    assert (ws.root / "out" / "model.onnx").read_bytes() != b""


def test_saving_ranges_plan_or_statistics_never_replaces_a_file_unasked(ws):
    from workbench import collect_statistics, open_data

    model, ranges, plan = _api_result(ws)
    stats = collect_statistics(model, open_data(ws.data, model), progress=False)
    for name in ("r.json", "r.csv", "p.json", "s.npz"):
        (ws.root / name).write_text("my notes\n")
    ws.snap()
    for save, name in ((ranges.save, "r.json"), (ranges.write_csv, "r.csv"), (plan.save, "p.json"),
                       (stats.save, "s.npz")):
        with pytest.raises(WorkbenchError, match=f"{name}' already exists; .*overwrite=True"):
            save(ws.root / name)
    with pytest.raises(WorkbenchError, match="it is a folder"):
        ranges.save(ws.data)
    ws.unchanged()
    ranges.save(ws.root / "r.json", overwrite=True)
    assert json.loads((ws.root / "r.json").read_text())["tensors"]


def test_session_export_outside_the_project_refuses_an_existing_file(ws):
    from workbench.session import Session

    s = Session(ws.model, ws.data, batch_size=2, method="minmax", project=ws.root / "proj")
    s.calibrate()
    (ws.root / "user.onnx").write_bytes(b"kept")
    ws.snap()
    with pytest.raises(WorkbenchError, match="user.onnx.*already exist"):
        s.export("qdq", path=ws.root / "user.onnx")
    ws.unchanged()
    first = s.export("qdq")  # the session's own files, inside the project: replaced on a re-run
    assert s.export("qdq") == first and first.is_relative_to(ws.root / "proj")
