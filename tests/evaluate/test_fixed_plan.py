"""The emulation of one plan (:class:`FixedPlanModel`: the switchable graph with the plan's switches
folded and its ``If`` nodes inlined) computes what the switchable model computes for that plan.

Random plans (INT8 / FP16 / FP32 per node, FP16 base or not, manual thresholds) on small models of
every judged kind; each plan's fixed emulation is run on the same feed as the switchable model
and, with the plan's own scales and others, compared with it and with the exported TensorRT file.
"""
import numpy as np
import pytest

from test_emulation_is_the_file import KINDS, PLANS, _emulation, _exact, _random_plan
from workbench.evaluate.emulate import SCALE, file_noise
from workbench.evaluate.fixed_plan import FixedPlanModel
from workbench.export import build_quantized


@pytest.mark.parametrize("kind", KINDS)
def test_fixed_plan_equals_the_switchable_model(kind):
    info, ranges, feeds, sm, out = _emulation(kind)
    rng = np.random.default_rng(5)
    for _ in range(PLANS):
        plan = _random_plan(info, ranges, rng)
        flags = sm.flags(plan, ranges)
        fixed = FixedPlanModel(sm, flags)
        assert not [n for n in fixed.proto.graph.node if n.op_type == "If"]
        assert fixed.proto.ByteSize() < sm.proto.ByteSize()
        other = {**flags, SCALE: flags[SCALE] * np.float32(0.8)}  # another scale vector, same plan
        for feed in feeds:
            for f in (flags, other):
                want = sm.run([feed], f, [out])[out]
                got = fixed.run([feed], f, [out])[out]
                assert np.array_equal(got, want), (kind, plan.fp16_nodes())
            written = _exact(build_quantized(info, ranges, plan, variant="trt"), feed, out)
            diff = np.abs(fixed.run([feed], flags, [out])[out] - written).reshape(len(written), -1).max(axis=1)
            assert np.all(diff <= file_noise(written))
