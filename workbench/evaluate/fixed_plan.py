"""The emulation of one precision plan: the switchable graph with its plan switches fixed.

A search that keeps the plan and changes only thresholds (the ``auto`` ranges) runs the
switchable emulation (:class:`~workbench.evaluate.emulate.SwitchableModel`) many times with the
same INT8/FP16/tensor switches. :class:`FixedPlanModel` is that graph specialised to those
switches (:func:`~workbench.graph.specialize.specialize`): no ``If`` runs, only the taken
variant's constants are carried (sessions over parts of it are built several times faster),
and the scales stay a graph input. Its outputs are bit for bit the switchable model's on the same
feed (``tests/evaluate/test_fixed_plan.py``), hence the exported file's wherever the switchable
model's are.
"""
from __future__ import annotations

import numpy as np

from ..errors import InternalError
from ..graph.specialize import specialize
from .emulate import FP16_FLAGS, INT8_FLAGS, SCALE, TENSOR_FLAGS, run_batches

PLAN_SWITCHES = (INT8_FLAGS, FP16_FLAGS, TENSOR_FLAGS)


class FixedPlanModel:
    """:class:`~workbench.evaluate.emulate.SwitchableModel` ``switch`` with the plan switches of
    ``flags`` fixed; fed only :data:`~workbench.evaluate.emulate.SCALE`.

    Attributes shared with the switchable model (what :class:`~workbench.evaluate.downstream.DownstreamRuns`
    reads): ``model``, ``proto``, ``tensors``, ``tensor_index``, ``threads``, :meth:`run`; and
    ``external``: the values of the large constants, which ``proto`` only declares
    (:func:`~workbench.backends.ort.in_memory_initializers`).
    """

    def __init__(self, switch, flags: dict):
        self.switch = switch
        self.model, self.threads = switch.model, switch.threads
        self.tensors, self.tensor_index = switch.tensors, switch.tensor_index
        self.fixed = {k: np.array(flags[k], copy=True) for k in PLAN_SWITCHES}
        from ..backends.ort import in_memory_initializers

        # the weights stay in memory, shared by every session over (parts of) this graph
        self.proto, self.external = in_memory_initializers(specialize(switch.proto, self.fixed))
        self._lanes = None

    def tensors_read(self) -> set:
        """The tensors whose scale this plan's graph reads (those quantized under this plan)."""
        from .downstream_graph import switch_readers
        from .reuse import node_inputs

        g = self.proto.graph
        read = [j for sw, j in switch_readers(g, [node_inputs(n) for n in g.node]) if sw == SCALE]
        if None in read:  # a reader of the whole vector: every tensor may be read
            return set(self.tensors)
        return {self.tensors[j] for j in read}

    def matches(self, flags: dict) -> bool:
        """Whether ``flags`` has this model's plan switches (only its scales may differ)."""
        return all(np.array_equal(np.asarray(flags[k]), v) for k, v in self.fixed.items())

    @property
    def lanes(self):
        """The sessions of this graph (:class:`~workbench.backends.lanes.Lanes`)."""
        if self._lanes is None:
            from ..backends.lanes import ort_lanes
            from ..graph.semantics import EXACT

            self._lanes = ort_lanes(self.proto, self.threads, optimization=EXACT,
                                    external=self.external, shared_arena=True)
        return self._lanes

    def run(self, batches: list, flags: dict, output_names=None) -> dict:
        """As :meth:`SwitchableModel.run <workbench.evaluate.emulate.SwitchableModel.run>`, for flags of this plan."""
        if not self.matches(flags):
            raise InternalError("FixedPlanModel.run was given another plan's switches.")
        return run_batches(self.lanes, batches, {SCALE: flags[SCALE]},
                           output_names or [o.name for o in self.model.outputs])


__all__ = ["FixedPlanModel", "PLAN_SWITCHES"]
