"""The graph-edit tool: fresh names, node copies, dead constants and the assembled model."""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from workbench.graph.edit import Names, assemble, copy_node, unread


def _model():
    nodes = [helper.make_node("Constant", [], ["c"], name="const", value=numpy_helper.from_array(np.ones(2, np.float32))),
             helper.make_node("Add", ["x", "w"], ["a"], name="add"),
             helper.make_node("Mul", ["a", "c"], ["y"], name="mul")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
                          initializer=[numpy_helper.from_array(np.full(2, 3, np.float32), "w")],
                          value_info=[helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.metadata_props.add(key="k", value="v")
    return m


def test_names_never_collide_with_the_graph():
    names = Names.of(_model().graph)
    assert names.unique("a") == "a_1" and names.unique("a") == "a_2" and names.unique("new") == "new"
    assert names.unique("add") == "add_1" and names.unique("w") == "w_1"  # node and initializer names too


def test_copy_node_leaves_the_original():
    m = _model()
    add = m.graph.node[1]
    c = copy_node(add, inputs={1: "w2"}, outputs={0: "a2"})
    assert list(c.input) == ["x", "w2"] and list(c.output) == ["a2"] and list(add.input) == ["x", "w"]


def test_assemble_drops_dead_constants_and_keeps_the_header():
    m = _model()
    # replace Mul(a, c) by Mul(a, w): the Constant c is now dead, w stays
    nodes = [m.graph.node[0], m.graph.node[1], copy_node(m.graph.node[2], inputs={1: "w"})]
    dead = unread({"c", "w"}, nodes, ["y"])
    assert dead == {"c"}
    out = assemble(m, nodes, dead=dead, new_initializers=[numpy_helper.from_array(np.zeros(1, np.float32), "z")])
    onnx.checker.check_model(out)
    assert [n.name for n in out.graph.node] == ["add", "mul"]
    assert [t.name for t in out.graph.initializer] == ["w", "z"]
    assert [v.name for v in out.graph.value_info] == ["a"] and out.metadata_props[0].value == "v"
    assert out.opset_import[0].version == 17 and out.ir_version == m.ir_version
    # value_info of a tensor no longer produced goes
    assert [v.name for v in assemble(m, [nodes[0]], dead=set()).graph.value_info] == []
