import numpy as np
import onnx
import pytest

import tiny_models
from workbench.errors import WorkbenchError
from workbench.graph.model import ModelInfo, load_model


def test_missing_corrupt_and_empty_files_name_the_file(tmp_path):
    with pytest.raises(WorkbenchError, match="does not exist"):
        load_model(tmp_path / "nope.onnx")
    bad = tmp_path / "corrupt.onnx"
    bad.write_bytes(b"\x08\x07garbage that is not protobuf" * 10)
    with pytest.raises(WorkbenchError, match="corrupt.onnx"):
        load_model(bad)
    with pytest.raises(WorkbenchError, match="not a file"):
        load_model(tmp_path)


def test_truncated_model_file_is_reported(tmp_path):
    path = tiny_models.save(tiny_models.small_cnn(), tmp_path / "m.onnx")
    data = open(path, "rb").read()
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(WorkbenchError, match="cut.onnx"):
        load_model(cut)


@pytest.mark.parametrize("constants", [False, True])
@pytest.mark.parametrize("opset", [11, 13, 17, 20])
def test_quantizable_targets_and_weights(constants, opset):
    info = ModelInfo(tiny_models.small_cnn(opset=opset, weights_as_constants=constants))
    targets = {t.node: t for t in info.quantizable_nodes()}
    assert set(targets) == {"conv1", "conv2", "add", "maxpool", "gap", "fc"}
    assert targets["conv1"].activation_inputs == ("input",)
    assert targets["conv1"].weight_input == "conv1.weight" and targets["conv1"].weight_axis == 0
    assert targets["add"].activation_inputs == ("r2", "r1")
    assert targets["fc"].weight_axis == 0  # Gemm with transB=1: weight is [out, in]
    assert info.constants["conv2.weight"].shape == (8, 8, 3, 3)
    assert info.opset == opset


def test_matmul_weight_axis_is_last_and_int_inputs_are_not_float():
    info = ModelInfo(tiny_models.two_input_matmul())
    targets = {t.node: t for t in info.quantizable_nodes()}
    assert targets["proj_matmul"].weight_axis == 1
    assert "input_ids" not in info.float_tensors()
    assert info.input_spec("input_ids").dtype == np.int64
    with pytest.raises(WorkbenchError, match="the model has: 'input_ids', 'attention_mask'"):
        info.input_spec("images")


def test_unnamed_nodes_get_unique_names_and_fingerprint_tracks_weights():
    model = tiny_models.small_cnn()
    fp = ModelInfo(tiny_models.small_cnn()).fingerprint()
    for node in model.graph.node:
        node.name = ""
    info = ModelInfo(model)
    names = [n.name for n in info.nodes]
    assert len(set(names)) == len(names) and all(names)
    other = ModelInfo(tiny_models.small_cnn(seed=1)).fingerprint()
    assert other != fp
    assert ModelInfo(tiny_models.small_cnn()).fingerprint() == fp


def test_existing_qdq_is_detected():
    model = tiny_models.small_cnn(opset=13)
    g = model.graph
    g.initializer.extend([onnx.numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                          onnx.numpy_helper.from_array(np.array(0, np.int8), "z")])
    q = onnx.helper.make_node("QuantizeLinear", ["input", "s", "z"], ["q"], name="q")
    dq = onnx.helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"], name="dq")
    g.node[0].input[0] = "dq"  # conv1 now reads the dequantized input
    g.node.insert(0, dq)
    g.node.insert(0, q)
    info = ModelInfo(model)
    assert set(info.has_qdq()) == {"q", "dq"}
