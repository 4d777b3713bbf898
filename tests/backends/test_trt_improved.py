"""An export with the accuracy steps applied is the same kind of explicit Q/DQ model (same op
types, changed initializers) and a real TensorRT builder builds it."""
import onnx

import improve_models as M
from realistic_models import ArrayData
from trt_marks import STATUS, needs_builder
from trt_models import assert_builder_agrees_with_plan
from workbench.backends.trt_build import build_engine
from workbench.backends.trt_config import BuildConfig
from workbench.export import export_result
from workbench.graph.model import ModelInfo
from workbench.precision import PrecisionPlan
from workbench.search.calibration import calibrate
from workbench.search.improve_steps import improve

pytestmark = needs_builder


def test_improved_export_builds_with_the_same_op_types(tmp_path, monkeypatch):
    import workbench.search.improve_steps as steps_module

    # keep both steps whatever they gain: the file must still build
    monkeypatch.setattr(steps_module, "held_out_rule", lambda *a, **k: (lambda before, after: (True, "kept")))
    model = M.depthwise_model("relu", bias=False)  # bias correction adds the biases
    info = ModelInfo(model)
    samples = [{"x": b["x"][i]} for b in M.batches(model, 12, seed=1) for i in range(4)]
    out = calibrate(info, ArrayData(info, samples), method="minmax")
    plan = PrecisionPlan.default(info)
    res = improve(info, out.ranges, plan, out.holdout, out.evaluator, steps=["rounding", "bias_correction"])
    assert res.applied() == ["rounding", "bias_correction"], res.table()
    plain = export_result(info, out.ranges, plan, tmp_path / "plain", kinds=["qdq"])["qdq"].onnx_path
    better = export_result(res.model, res.ranges, plan, tmp_path / "steps", kinds=["qdq"])["qdq"].onnx_path
    a, b = onnx.load(str(plain)), onnx.load(str(better))
    assert [n.op_type for n in a.graph.node] == [n.op_type for n in b.graph.node]
    assert len(b.graph.initializer) > len(a.graph.initializer)  # the added biases
    report = build_engine(better, tmp_path / "steps.engine", BuildConfig())
    assert report.engine_bytes > 0 and report.mode == "strongly_typed"
    assert_builder_agrees_with_plan(report, plan, info)
    assert STATUS.can_build
