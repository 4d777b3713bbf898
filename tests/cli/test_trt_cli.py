"""``workbench build`` / ``inspect-engine``, ``Session.rebuild(backend="trt")`` and the printed
Polygraphy commands, with the real TensorRT builder (CI: TensorRT-RTX, no GPU)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest

import tiny_models as tm
from trt_models import export, feed_cnn
from trt_marks import STATUS, needs_builder, needs_rtx
from workbench.cli import main
from workbench.backends.commands import engine_build_commands


@pytest.fixture
def qdq(tmp_path):
    path, _, _ = export(tmp_path, tm.small_cnn(), feed_cnn())
    return path


@needs_builder
def test_cli_build_then_inspect(qdq, tmp_path, capsys):
    engine = tmp_path / "q.engine"
    fp32 = tm.save(tm.small_cnn(), tmp_path / "fp32.onnx")
    assert main(["build", str(qdq), "-o", str(engine), "--compare-fp32", fp32]) == 0
    out = capsys.readouterr().out
    assert f"with {STATUS.label}" in out and "FP32 engine built the same way" in out
    assert (("Build only:" in out) and "GPU" in out) != STATUS.can_run
    record = json.loads((tmp_path / "q.engine.json").read_text())
    assert record["engine_bytes"] == engine.stat().st_size and record["fp32"]["onnx_path"] == fp32
    # a second build into the same file needs --overwrite; nothing is replaced without it
    assert main(["build", str(qdq), "-o", str(engine)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["build", str(qdq), "-o", str(engine), "--overwrite"]) == 0
    capsys.readouterr()
    code = main(["inspect-engine", str(engine), "--csv", str(tmp_path / "layers.csv")])
    out = capsys.readouterr().out
    if STATUS.can_run:
        assert code == 0 and "inspector layout" in out
    elif STATUS.flavor == "rtx":
        assert code == 0 and "needs a supported GPU" in out and "from the TensorRT builder log" in out
        assert "conv1" in (tmp_path / "layers.csv").read_text()


@needs_builder
def test_cli_flag_mistakes_before_any_build(qdq, tmp_path):
    assert main(["build", str(qdq), "-o", str(tmp_path / "x.engine"), "--compute-capability", "eight"]) == 2
    assert main(["build", str(qdq), "-o", str(qdq)]) == 2  # the input itself
    assert not (tmp_path / "x.engine").exists()


def test_cli_print_commands_for_rtx(capsys):
    assert main(["build", "q.onnx", "-o", "q.engine", "--trt-flavor", "rtx", "--shapes", "input:1x3x16x16",
                 "--compute-capability", "8.9", "--print-commands"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("POLYGRAPHY_USE_TENSORRT_RTX=1 polygraphy convert q.onnx -o q.engine")
    assert "--compute-capabilities 8.9" in lines[0]
    assert "--graph-optimization-level ORT_DISABLE_ALL" in lines[-1]
    os.environ.pop("WORKBENCH_TRT_FLAVOR", None)  # --trt-flavor selects the flavor for the process


@needs_rtx
def test_printed_polygraphy_rtx_command_builds_our_export(qdq, tmp_path):
    cmd = engine_build_commands(qdq, tmp_path / "poly.engine",
                                shapes={"input": (1, 3, 16, 16)})["polygraphy (TensorRT-RTX)"]
    env = {k: v for k, v in os.environ.items() if k != "POLYGRAPHY_USE_TENSORRT_RTX"}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (tmp_path / "poly.engine").stat().st_size > 0


def test_printed_check_runs_onnx_runtime_with_exact_semantics(tmp_path):
    """The ONNX Runtime side of the printed check equals the workbench's exact-semantics run
    (graph optimizations off), not ONNX Runtime's fused integer kernels."""
    from polygraphy.json import load_json, save_json

    import realistic_models as rm
    from workbench.backends.ort import OrtRunner

    samples = rm.image_data(4)
    x = {"image": np.stack([d["image"] for d in samples])}
    qdq, _, _ = export(tmp_path, rm.classifier_relu6(), x)
    save_json([x], str(tmp_path / "in.json"))
    argv = engine_build_commands(qdq)["polygraphy check (TensorRT 10/11)"].split()
    argv = argv[:argv.index("--trt")] + argv[argv.index("--trt") + 2:]  # ONNX Runtime alone (no GPU here)
    argv += ["--load-inputs", str(tmp_path / "in.json"), "--save-outputs", str(tmp_path / "out.json")]
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (_, iterations), = load_json(str(tmp_path / "out.json"))  # one runner, one iteration
    checked = np.asarray(iterations[0]["logits"])
    exact = OrtRunner(qdq, optimization="disable").infer(x)["logits"]
    np.testing.assert_array_equal(checked, exact)
    from workbench.graph.semantics import deployed_path

    with deployed_path():  # ONNX Runtime's fused kernels, on purpose (the contrast)
        fused = OrtRunner(qdq, optimization="all").infer(x)["logits"]
    if not np.array_equal(fused, exact):  # where ORT's kernels differ (measured here: by 0.14)
        assert not np.array_equal(checked, fused)


@needs_builder
def test_session_rebuild_with_tensorrt(tmp_path):
    from workbench.session import Session

    model = tm.save(tm.small_cnn(), tmp_path / "cnn.onnx")
    for sub, seed in (("calib", 1), ("eval", 2)):
        (tmp_path / sub).mkdir()
        np.save(tmp_path / sub / "b0.npy", np.random.default_rng(seed).standard_normal((4, 3, 16, 16)).astype(np.float32))
    s = Session(model, tmp_path / "calib", eval_data=tmp_path / "eval", batch_size=4, project=tmp_path / "proj")
    s.calibrate()
    build = s.rebuild(backend="trt")
    record = json.loads(open(build.paths["engine_record"]).read())
    assert record["tensorrt"] == STATUS.label and record["fp32"]["onnx_path"] == str(model)
    assert any(STATUS.label in n and "MB" in n for n in build.notes)
    if STATUS.can_run:
        assert build.latency_ms > 0
    else:
        assert build.latency_ms is None
        assert any(n.startswith("build only:") and "GPU" in n for n in build.notes)
    assert onnx.load(build.paths["onnx"])  # the exported TensorRT file of this build


@needs_builder
def test_autoprec_result_builds_as_planned(tmp_path):
    """A mixed INT8/FP16 plan found by the automatic search (6 dB above all-INT8), built by
    Session.rebuild(backend="trt"): TensorRT runs each weighted node as the search decided."""
    import realistic_models as rm
    from trt_models import assert_builder_agrees_with_plan
    from workbench.session import Session

    model = tm.save(rm.classifier_relu6(), tmp_path / "m.onnx")
    for sub, seed in (("calib", 1), ("eval", 2)):
        (tmp_path / sub).mkdir()
        for i, d in enumerate(rm.image_data(16, seed=seed)):
            np.save(tmp_path / sub / f"s{i}.npy", d["image"][None])
    s = Session(model, tmp_path / "calib", eval_data=tmp_path / "eval", batch_size=8, project=tmp_path / "proj")
    s.calibrate()
    int8 = s.rebuild()
    result = s.mixed_precision(f"sqnr>={int8.summary['sqnr_db'] + 6:.1f}")
    assert result.met and s.plan.int8_nodes() and s.plan.fp16_nodes()
    build = s.rebuild(backend="trt")
    record = json.loads(open(build.paths["engine_record"]).read())
    report = type("Report", (), {"builder_layers": record["builder_layers"]})
    assert_builder_agrees_with_plan(report, build.plan, s.model_info)
