"""PrecisionPlan: defaults, overrides, amax overrides, FP16 safety, JSON and table."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import tiny_models as tm
from workbench.errors import WorkbenchError
from workbench.graph.model import ModelInfo
from workbench.precision.plan import Precision, PrecisionPlan


@pytest.fixture
def cnn():
    return ModelInfo(tm.small_cnn())


def _bias_add_model():
    """x -> MatMul(W) -> Add(bias) -> Relu: the Add has a constant operand."""
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "W")
    b = numpy_helper.from_array(np.ones(3, np.float32), "b")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["m"], name="mm"),
         helper.make_node("Add", ["m", "b"], ["a"], name="bias_add"),
         helper.make_node("Relu", ["a"], ["y"], name="relu")],
        "bias", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], initializer=[w, b])
    return ModelInfo(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))


def test_default_plan_int8_ops_and_bases(cnn):
    plan = PrecisionPlan.default(cnn)
    assert plan.int8_nodes() == ["conv1", "conv2", "add", "maxpool", "gap", "fc"]
    assert plan.fp16_nodes() == []
    assert {e.node for e in plan if e.precision is Precision.FP32} == {"relu1", "relu2", "flatten"}
    assert all(e.reason == "default" for e in plan)
    fp16 = PrecisionPlan.default(cnn, base="fp16")
    assert fp16.fp16_nodes() == ["relu1", "relu2", "flatten"]
    assert fp16.int8_nodes() == plan.int8_nodes()
    with pytest.raises(WorkbenchError, match="base"):
        PrecisionPlan.default(cnn, base="int4")


def test_default_leaves_bias_add_and_mul_out_of_int8():
    plan = PrecisionPlan.default(_bias_add_model())
    assert plan.int8_nodes() == ["mm"]
    assert plan.can_run("bias_add", "int8")  # capable, just not by default
    plan2 = PrecisionPlan.default(ModelInfo(tm.two_input_matmul()))
    assert plan2.int8_nodes() == ["proj_matmul"]
    assert plan2.precision("mask_mul") is Precision.FP32 and plan2.can_run("mask_mul", "int8")


def test_set_node_checks_names_and_capabilities(cnn):
    plan = PrecisionPlan.default(cnn)
    plan.set_node("conv2", "fp16")
    assert plan["conv2"].precision is Precision.FP16 and plan["conv2"].reason == "user"
    with pytest.raises(WorkbenchError, match="'conv1'"):  # close match offered
        plan.set_node("conv_1", "fp32")
    with pytest.raises(WorkbenchError, match="cannot run in INT8"):
        plan.set_node("relu1", "int8")
    with pytest.raises(WorkbenchError, match="precision"):
        plan.set_node("conv1", "int4")
    const = PrecisionPlan.default(ModelInfo(tm.small_cnn(weights_as_constants=True)))
    with pytest.raises(WorkbenchError, match="cannot run in FP16"):
        const.set_node("const_conv1.weight", "fp16")


def test_set_pattern_and_op_type(cnn):
    plan = PrecisionPlan.default(cnn)
    assert plan.set_pattern(r"^conv\d", "fp32") == ["conv1", "conv2"]
    assert plan.precision("conv1") is Precision.FP32
    # relu nodes cannot be INT8: skipped, the capable ones are changed
    assert plan.set_pattern(r"^(conv|relu)", "int8") == ["conv1", "conv2"]
    with pytest.raises(WorkbenchError, match="No node name matches"):
        plan.set_pattern("^nothing$", "fp16")
    with pytest.raises(WorkbenchError, match="Invalid regular expression"):
        plan.set_pattern("(", "fp16")
    with pytest.raises(WorkbenchError, match="none of which can run in int8"):
        plan.set_pattern("relu", "int8")
    assert plan.set_op_type("Relu", "fp16") == ["relu1", "relu2"]
    with pytest.raises(WorkbenchError, match="no node of op type 'Softmax'"):
        plan.set_op_type("Softmax", "fp16")


def test_amax_overrides_validated(cnn):
    plan = PrecisionPlan.default(cnn)
    plan.set_amax("r1", 3.5)
    assert plan.amax_overrides == {"r1": 3.5}
    for bad in (0, -1.0, float("nan"), float("inf"), "x"):
        with pytest.raises(WorkbenchError, match="finite and > 0"):
            plan.set_amax("r1", bad)
    with pytest.raises(WorkbenchError, match="'r1'"):
        plan.set_amax("r_1", 1.0)
    plan.clear_amax("r1")
    assert plan.amax_overrides == {}


def test_copy_is_independent_and_diff(cnn):
    plan = PrecisionPlan.default(cnn)
    plan.set_amax("r2", 2.0)
    other = plan.copy()
    other.set_node("fc", "fp32")
    other.set_amax("r2", 4.0)
    assert plan.precision("fc") is Precision.INT8 and plan.amax_overrides == {"r2": 2.0}
    d = plan.diff(other)
    assert d.nodes == [("fc", Precision.INT8, Precision.FP32)]
    assert d.amax == [("r2", 2.0, 4.0)]
    assert not plan.diff(plan.copy())
    assert plan != other and plan == plan.copy()


def test_json_round_trip(cnn, tmp_path):
    plan = PrecisionPlan.default(cnn, base="fp16")
    plan.set_node("conv2", "fp32")
    plan.set_node("gap", "fp16", reason="auto", detail="search step 3")
    plan.set_amax("sum", 1.25)
    path = plan.save(tmp_path / "plan.json")
    loaded = PrecisionPlan.load(path, cnn)
    assert loaded == plan
    assert loaded["gap"].reason == "auto" and loaded["gap"].detail == "search step 3"
    assert loaded.base == "fp16"
    assert json.loads(path.read_text())["nodes"][0]["node"] == "conv1"


def test_loading_a_plan_for_another_model_fails(cnn, tmp_path):
    path = PrecisionPlan.default(cnn).save(tmp_path / "plan.json")
    other = ModelInfo(tm.two_input_matmul())
    with pytest.raises(WorkbenchError, match="another model.*'conv1'"):
        PrecisionPlan.load(path, other)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(WorkbenchError, match="not readable JSON"):
        PrecisionPlan.load(tmp_path / "bad.json", cnn)
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(WorkbenchError, match="not a workbench precision plan"):
        PrecisionPlan.load(tmp_path / "other.json", cnn)
    with pytest.raises(WorkbenchError, match="does not exist"):
        PrecisionPlan.load(tmp_path / "missing.json", cnn)


def test_dataframe(cnn):
    plan = PrecisionPlan.default(cnn)
    plan.set_node("fc", "fp16")
    df = plan.to_dataframe()
    assert list(df.columns) == ["node", "op_type", "precision", "reason", "detail"]
    assert len(df) == len(cnn.nodes)
    row = df.set_index("node").loc["fc"]
    assert (row.op_type, row.precision, row.reason) == ("Gemm", "fp16", "user")


def test_fp16_safety_demotes_out_of_range_nodes(cnn):
    plan = PrecisionPlan.default(cnn, base="fp16")
    ranges = {"c1": SimpleNamespace(amax=9e4, min=-1.0, max=9e4),
              "r2": SimpleNamespace(amax=1000.0, min=0.0, max=1000.0)}
    safe = plan.with_fp16_safety(cnn, ranges)
    assert safe["relu1"].precision is Precision.FP32
    assert safe["relu1"].reason == "unsafe-fp16" and "'c1'" in safe["relu1"].detail
    assert safe.precision("relu2") is Precision.FP16
    assert plan.precision("relu1") is Precision.FP16  # the input plan is not changed
    strict = plan.with_fp16_safety(cnn, ranges, threshold=512)
    assert strict.precision("relu2") is Precision.FP32  # 1000 > 512
    at_default = PrecisionPlan.default(cnn, base="fp16", ranges=ranges)
    assert at_default.precision("relu1") is Precision.FP32


def test_fp16_safety_checks_weights():
    model = tm.small_cnn()
    for init in model.graph.initializer:
        if init.name == "fc.weight":
            w = numpy_helper.to_array(init).copy()
            w[0, 0] = 1e5
            init.CopyFrom(numpy_helper.from_array(w, "fc.weight"))
    info = ModelInfo(model)
    plan = PrecisionPlan.default(info)
    plan.set_node("fc", "fp16")
    safe = plan.with_fp16_safety(info, {})
    assert safe["fc"].reason == "unsafe-fp16" and "fc.weight" in safe["fc"].detail


def test_an_override_records_who_made_it(cnn, tmp_path):
    plan = PrecisionPlan.default(cnn)
    plan.set_pattern("conv2", "fp16", origin="--fp16 conv2")
    plan.set_node("fc", "fp32", origin="app click")
    plan.set_amax("r1", 2.0, origin="app threshold")
    assert plan["conv2"].origin == "--fp16 conv2" and plan.copy().amax_origins == {"r1": "app threshold"}
    same = PrecisionPlan.default(cnn)
    same.set_node("conv2", "fp16")
    same.set_node("fc", "fp32")
    same.set_amax("r1", 2.0)
    assert same == plan  # who asked is not part of what the plan is
    back = PrecisionPlan.load(plan.save(tmp_path / "p.json"), cnn)
    assert back["fc"].origin == "app click" and back.amax_origins == {"r1": "app threshold"}
    back.clear_amax("r1")
    assert back.amax_origins == {}
