"""Digests of what the pipeline writes on the bundled sample, to show a refactoring kept behaviour
bit for bit: statistics -> ranges of every histogram method -> default and edited plans -> the
exported TensorRT, ONNX Runtime and CPU uint8 models.

    python benchmarks/same_outputs.py                  # print the digests (JSON)
    python benchmarks/same_outputs.py --check FILE     # exit 1 when any digest differs from FILE

It uses only the top-level API (``from workbench import ...``), which the package layout does not
change, so the same script runs on an older checkout (``PYTHONPATH=old_checkout python ...``).
tests/export/test_same_outputs.py compares a short version with tests/fixtures/sample_digests.json.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def digests(samples: int = 16) -> dict:
    from workbench import PRESETS, ModelInfo, PrecisionPlan, build_quantized, collect_statistics, compute_ranges, open_data

    info = ModelInfo.from_path(REPO / "sample_data" / "efficientnet_lite0.onnx")
    data = open_data(REPO / "sample_data" / "calib", info, preprocess=PRESETS["efficientnet-lite"], limit=samples)
    stats = collect_statistics(info, data, batch_size=8, progress=False)
    out = {"samples": stats.num_samples}
    for method in ("minmax", "percentile", "mse", "entropy", "entropy_zero_fix"):
        ranges = compute_ranges(stats, method)
        out[f"ranges/{method}"] = _sha(json.dumps({t: repr(float(r.amax)) for t, r in ranges.tensors.items()},
                                                  sort_keys=True).encode())
    ranges = compute_ranges(stats, "mse")
    plans = {"default": PrecisionPlan.default(info)}
    edited = PrecisionPlan.default(info)
    edited.set_pattern(r"^node_Conv_8[5-9]", "fp16")
    first = edited.int8_nodes()[0]
    edited.set_node(first, "fp32")
    plans["edited"] = edited
    for name, plan in plans.items():
        out[f"plan/{name}"] = _sha(json.dumps({n: str(plan.precision(n)) for n in plan.nodes}, sort_keys=True).encode())
        for variant in ("trt", "ort", "cpu_uint8"):
            model = build_quantized(info, ranges, plan, variant=variant)
            out[f"model/{name}/{variant}"] = _sha(model.SerializeToString(deterministic=True))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--check", metavar="FILE", help="compare with digests saved earlier")
    args = p.parse_args(argv)
    got = digests(args.samples)
    print(json.dumps(got, indent=1, sort_keys=True))
    if args.check:
        want = json.loads(Path(args.check).read_text())
        diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        print("same outputs" if not diff else f"DIFFERENT: {', '.join(diff)}")
        return 1 if diff else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
