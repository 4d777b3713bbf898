"""Model Explorer overlays: node-data JSON schema, colour bins, and ids that the ONNX adapter resolves."""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

from workbench.errors import WorkbenchError
from workbench.export import build_quantized
from workbench.export.explorer_overlay import (OVERLAY_METRICS, build_explorer_overlays, explorer_node_ids,
                                               overlay_path, write_explorer_overlays)
from workbench.graph import ModelInfo
from workbench.precision import PRECISIONS, Precision, PrecisionPlan

RED, AMBER, GREEN = "#d62728", "#ffbf00", "#2ca02c"
# Fields of model_explorer.node_data_builder (ai-edge-model-explorer 0.1.34) and of the web app's types.ts.
GRAPH_FIELDS = {"name", "results", "thresholds", "gradient", "hideInAggregatedStatsTable",
                "hideInChildrenStatsTable", "hideAggregatedStats", "showExpandedSummaryOnGroupNode",
                "showLabelCountColumnsInChildrenStatsTable"}
RESULT_FIELDS = {"value", "bgColor", "textColor"}


# ----------------------------------------------------------------------------- the model
def fp32_model() -> onnx.ModelProto:
    """Conv -> Relu -> Conv -> Add(residual) -> GlobalAveragePool -> Flatten -> Gemm; the Flatten is unnamed."""
    rng = np.random.default_rng(0)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c2", "r1"], ["sum"], name="add"),
        helper.make_node("GlobalAveragePool", ["sum"], ["pool"], name="gap"),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w3", "b3"], ["logits"], name="fc", transB=1),
    ]
    inits = [numpy_helper.from_array(a, n) for n, a in (
        ("w1", w(4, 3, 3, 3)), ("b1", w(4)), ("w2", w(4, 4, 3, 3)), ("b2", w(4)), ("w3", w(5, 4)), ("b3", w(5)))]
    graph = helper.make_graph(nodes, "tiny",
                              [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["N", 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def observed_ranges(model, feed):
    """min/max/amax of every float activation from one ONNX Runtime run (as tests/test_export.py)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    names = ModelInfo(m).float_tensors()
    have = {o.name for o in m.graph.output}
    m.graph.output.extend(onnx.ValueInfoProto(name=t) for t in names if t not in have)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    values = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"]).run(names, feed)
    return {n: SimpleNamespace(amax=float(np.abs(v).max()), min=float(v.min()), max=float(v.max()))
            for n, v in zip(names, values)}


@pytest.fixture(scope="module")
def case():
    """(FP32 ModelInfo, exported Q/DQ model, per-node dicts keyed by FP32 node names)."""
    info = ModelInfo(fp32_model())
    feed = {"input": np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype(np.float32)}
    ranges = observed_ranges(info.model, feed)
    plan = PrecisionPlan.default(info)
    plan.set_node("gap", "fp16")  # Casts around it in the TensorRT file
    exported = build_quantized(info, ranges, plan)
    sqnr = {"conv1": 31.0, "conv2": 20.0, "add": 10.0, "gap": 15.0, "fc": 25.0, "relu1": math.inf}
    rank = {"add": 1, "conv2": 2, "gap": 3, "fc": 4, "conv1": 5}
    nodes = {}
    for row in plan:
        values = {"precision": str(row.precision)}
        node = info.node_by_name[row.node]
        if row.node in sqnr:
            values["sqnr_db"] = sqnr[row.node]
        if row.node in rank:
            values["sensitivity_rank"] = rank[row.node]
        if row.precision == Precision.INT8:
            values["amax"] = ranges[node.input[0]].amax
        nodes[row.node] = values
    return info, exported, nodes


def colour_of(data: dict, value: float) -> str:
    """The colour Model Explorer's web app gives ``value`` from ``thresholds`` (first bound >= value)."""
    for item in data["thresholds"]:
        if value <= item["value"]:
            return item["bgColor"]
    return "transparent"


def strict_loads(text: str):
    def refuse(token):
        raise ValueError(f"non-standard JSON constant {token}")
    return json.loads(text, parse_constant=refuse)


# ----------------------------------------------------------------------------- without the adapter
def test_one_file_per_metric_in_the_node_data_schema(case, tmp_path):
    _, exported, nodes = case
    overlays = build_explorer_overlays(exported, nodes)
    assert set(overlays.data) == set(OVERLAY_METRICS)
    files = write_explorer_overlays(overlays, tmp_path / "model")
    assert files == {m: tmp_path / f"model.explorer.{m}.json" for m in OVERLAY_METRICS}
    for metric, path in files.items():
        data = strict_loads(path.read_text())
        assert set(data) <= GRAPH_FIELDS and "results" in data
        # single-graph form: the web app applies it to the open graph ('results' has no 'results')
        assert "results" not in data["results"]
        assert data["name"] == OVERLAY_METRICS[metric].title
        for node_id, result in data["results"].items():
            assert set(result) <= RESULT_FIELDS and "value" in result, (metric, node_id)
            if not isinstance(result["value"], (int, float)):
                assert "bgColor" in result  # strings get no colour from thresholds or gradient
        bounds = [t["value"] for t in data.get("thresholds", [])]
        assert bounds == sorted(bounds)
        stops = [g["stop"] for g in data.get("gradient", [])]
        if stops:
            assert stops[0] == 0 and stops[-1] == 1 and stops == sorted(stops)


def test_sqnr_bins(case):
    _, exported, nodes = case
    data = build_explorer_overlays(exported, nodes).data["sqnr_db"]
    results = data["results"]
    assert {n: colour_of(data, results[n]["value"]) for n in ("conv1", "conv2", "add", "gap", "fc")} == {
        "conv1": GREEN, "conv2": AMBER, "add": RED, "gap": RED, "fc": AMBER}  # 15 and 25 dB: the lower bin
    assert colour_of(data, 25.001) == GREEN and colour_of(data, 1e6) == GREEN
    assert results["relu1"] == {"value": "inf", "bgColor": GREEN}  # exact output; JSON has no Infinity
    assert "Flatten_5" not in results  # no SQNR given


def test_precision_overlay_marks_added_nodes(case):
    _, exported, nodes = case
    results = build_explorer_overlays(exported, nodes).data["precision"]["results"]
    expected = {"conv1": "int8", "relu1": "fp32", "conv2": "int8", "add": "int8", "gap": "fp16",
                "Flatten_5": "fp32", "fc": "int8"}
    assert {n: results[n]["value"] for n in expected} == expected
    assert results["gap"]["bgColor"] == PRECISIONS[Precision.FP16].color
    by_id = dict(zip(explorer_node_ids(exported), exported.graph.node))
    added = {i: r["value"] for i, r in results.items() if i not in expected}
    assert added and set(added.values()) == {"q/dq", "cast"}
    assert {by_id[i].op_type for i, v in added.items() if v == "q/dq"} == {"QuantizeLinear", "DequantizeLinear"}
    assert {by_id[i].op_type for i, v in added.items() if v == "cast"} == {"Cast"}
    assert sum(n.op_type in ("QuantizeLinear", "DequantizeLinear", "Cast") for n in exported.graph.node) == len(added)


def test_rank_and_amax_gradients(case):
    _, exported, nodes = case
    data = build_explorer_overlays(exported, nodes).data
    rank = data["sensitivity_rank"]
    assert rank["results"]["add"] == {"value": 1}
    assert rank["gradient"][0] == {"stop": 0.0, "bgColor": RED}  # stop 0 = smallest value = rank 1
    amax = data["input_amax"]["results"]
    assert set(amax) == {"conv1", "conv2", "add", "fc"}
    assert amax["conv1"]["value"] == pytest.approx(nodes["conv1"]["amax"])


def test_nan_is_left_out_and_reported(case):
    _, exported, nodes = case
    nodes = {**nodes, "conv2": {**nodes["conv2"], "sqnr_db": float("nan")}}
    overlays = build_explorer_overlays(exported, nodes)
    assert "conv2" not in overlays.data["sqnr_db"]["results"]
    assert overlays.skipped == {"sqnr_db": ["conv2"]}
    strict_loads(overlays.to_json("sqnr_db"))


def test_fp32_names_missing_from_the_export_are_reported(case):
    _, exported, nodes = case
    overlays = build_explorer_overlays(exported, {**nodes, "folded_constant": {"precision": "fp32"}})
    assert overlays.missing == ["folded_constant"]
    assert "folded_constant" not in overlays.data["precision"]["results"]
    assert overlays.node_ids["conv1"] == "conv1"


@pytest.mark.parametrize("nodes, words", [
    ({"conv1": {"sqnr": 3.0}}, ["'sqnr'", "sqnr_db"]),
    ({"conv1": {"precision": "int4"}}, ["'int4'", "int8, fp16, fp32"]),
    ({"conv1": {"sqnr_db": "high"}}, ["'high'", "number"]),
    ({"conv1": {"sensitivity_rank": True}}, ["True", "number"]),
    ({"Conv_0": {"precision": "int8"}}, ["'Conv_0'", "'conv1'"]),
])
def test_bad_input_names_what_was_given_and_what_exists(case, nodes, words):
    _, exported, _ = case
    with pytest.raises(WorkbenchError) as err:
        build_explorer_overlays(exported, nodes)
    for word in words:
        assert word in str(err.value)


def renaming_model() -> onnx.ModelProto:
    """Unnamed nodes, repeated names and an If whose branches have unnamed nodes."""
    def relu(x, y, name=""):
        return helper.make_node("Relu", [x], [y], name=name)

    def branch(tag):
        return helper.make_graph([relu("x", f"{tag}1"), relu(f"{tag}1", f"{tag}2")], tag, [],
                                 [helper.make_tensor_value_info(f"{tag}2", onnx.TensorProto.FLOAT, [1])])

    nodes = [relu("x", "a"), helper.make_node("Identity", ["a"], ["a2"], name="node"),
             relu("a2", "b", "dup"), relu("b", "c", "dup"),
             helper.make_node("Cast", ["c"], ["flag"], to=onnx.TensorProto.BOOL),
             helper.make_node("If", ["flag"], ["d"], name="if", then_branch=branch("t"), else_branch=branch("e")),
             relu("d", "e"), relu("e", "y", "dup_1")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_ids_follow_the_adapters_renaming():
    """Unnamed nodes become node, node_1, ...; repeated names get _k; the counter is shared with subgraphs."""
    model = renaming_model()
    # the branches (else_branch first: attributes are in proto order) name theirs node, node_3 and
    # node, node_4 in scopes of their own, but the counter is shared: the Relu after the If is node_5
    assert explorer_node_ids(model) == ["node", "node_1", "dup", "dup_1", "node_2", "if", "node_5", "dup_1_1"]


def test_core_imports_without_model_explorer():
    code = ("import sys; sys.modules['model_explorer'] = None; sys.modules['model_explorer_onnx'] = None\n"
            "import workbench.export.explorer_overlay as m; print(sorted(m.OVERLAY_METRICS))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "sqnr_db" in out.stdout


def test_overlay_path():
    assert overlay_path("out/model", "sqnr_db").as_posix() == "out/model.explorer.sqnr_db.json"


# ----------------------------------------------------------------------------- through the adapter
def adapter_graph(model, tmp_path):
    """The main graph as model-explorer-onnx converts it (in process: no server, no browser)."""
    main = pytest.importorskip("model_explorer_onnx.main")
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    graphs = main.ONNXAdapter().convert(str(path), {})["graphs"]
    return graphs[0]


def test_every_overlay_id_resolves_in_the_adapter(case, tmp_path):
    info, exported, nodes = case
    files = write_explorer_overlays(build_explorer_overlays(exported, nodes), tmp_path / "model")
    graph = adapter_graph(exported, tmp_path)
    label = {n.id: n.label for n in graph.nodes}
    for metric, path in files.items():
        results = strict_loads(path.read_text())["results"]
        unresolved = sorted(set(results) - set(label))
        assert not unresolved, f"{metric}: ids the adapter does not show: {unresolved}"
    precision = strict_loads(files["precision"].read_text())["results"]
    for name in nodes:  # each FP32 node's data sits on the node of the same op
        assert label[name] == info.node_by_name[name].op_type
    assert {label[i] for i, r in precision.items() if r["value"] == "q/dq"} == {"QuantizeLinear", "DequantizeLinear"}


def test_generated_ids_match_the_adapter_for_unnamed_added_nodes(case, tmp_path):
    _, exported, nodes = case
    model = onnx.ModelProto()
    model.CopyFrom(exported)
    for node in model.graph.node:  # another tool's Q/DQ file: added nodes unnamed, a name repeated
        if node.op_type in ("QuantizeLinear", "DequantizeLinear", "Cast"):
            node.name = ""
    model.graph.node[-1].name = "conv1"
    graph = adapter_graph(model, tmp_path)
    shown = [n.id for n in graph.nodes if not n.id.startswith("[value] ")]
    assert explorer_node_ids(model) == shown
    results = build_explorer_overlays(model, nodes).data["precision"]["results"]
    assert set(results) <= set(shown)
    assert any(i.startswith("node") for i in results)


def test_generated_ids_match_the_adapter_with_subgraphs(tmp_path):
    model = renaming_model()
    graph = adapter_graph(model, tmp_path)
    # the adapter embeds the If's branches into the main graph as if/<branch>/<id> and adds if_phi
    shown = [n.id for n in graph.nodes if not n.id.startswith(("[value] ", "if/", "if_phi"))]
    assert explorer_node_ids(model) == shown


def test_json_fits_model_explorers_node_data_classes(case):
    builder = pytest.importorskip("model_explorer.node_data_builder")
    _, exported, nodes = case
    fields = {cls: {f.name for f in dataclasses.fields(cls)} for cls in (
        builder.GraphNodeData, builder.NodeDataResult, builder.ThresholdItem, builder.GradientItem)}
    assert GRAPH_FIELDS == fields[builder.GraphNodeData]
    for data in build_explorer_overlays(exported, nodes).data.values():
        graph = builder.GraphNodeData(
            results={k: builder.NodeDataResult(**r) for k, r in data["results"].items()},
            thresholds=[builder.ThresholdItem(**t) for t in data.get("thresholds", [])],
            gradient=[builder.GradientItem(**g) for g in data.get("gradient", [])],
            **{k: v for k, v in data.items() if k not in ("results", "thresholds", "gradient")})
        written = strict_loads(graph.to_json_string())  # what model_explorer itself writes (defaults included)
        assert {k: v for k, v in written.items() if v not in ([], False)} == data
