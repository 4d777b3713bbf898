"""Layer 2, graph facts: the ONNX model as the rest of the pipeline sees it.

Owns: loading and naming (``model.ModelInfo``), read-only graph facts (``facts.GraphFacts``: order,
producers/consumers, INT8 targets, the residual-Add rule), op lists (``ops``), FP16-capable slots
(``fp16_slots``), input specs and feed checks (``feeds``), graph edits (``edit``) and the definition
of evaluation semantics (``semantics``).
May import: ``workbench.errors``, ``workbench._io``, ``workbench.validate``, ``workbench.outputs``.
"""
from .edit import Names, assemble, copy_node, unique_name, unread
from .facts import GraphFacts
from .model import ModelInfo, QuantTarget, TensorSpec, load_model

__all__ = ["GraphFacts", "ModelInfo", "Names", "assemble", "copy_node", "unread", "QuantTarget", "TensorSpec", "load_model", "unique_name"]
