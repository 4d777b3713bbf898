"""The digests of a recipe: bytes, except what differs from run to run by nature (a JSON file's
timings and paths, a CSV's measured latencies, a statistics file's seconds); and how recipes compare."""
import json

import numpy as np

from workbench.outputs.recipe import compare, content_digest, file_digest


def test_digests_keep_what_was_computed_and_drop_what_was_measured(tmp_path):
    a, b = tmp_path / "a.plan.json", tmp_path / "b.plan.json"
    a.write_text(json.dumps({"nodes": [1, 2], "steps": {"seconds": 1.5, "applied": ["rounding"]}, "path": "/x"}))
    b.write_text(json.dumps({"path": "/y", "steps": {"applied": ["rounding"], "seconds": 9.0}, "nodes": [1, 2]}))
    assert content_digest(a) == content_digest(b) != file_digest(a)
    b.write_text(json.dumps({"nodes": [1, 3], "steps": {"applied": ["rounding"]}}))
    assert content_digest(a) != content_digest(b)

    c, d = tmp_path / "c.curve.csv", tmp_path / "d.curve.csv"
    c.write_text("n_fallback,sqnr_db,latency_ms_b1\n0,45.3,0.0323\n1,51.2,0.0318\n")
    d.write_text("n_fallback,sqnr_db,latency_ms_b1\n0,45.3,0.0411\n1,51.2,0.0290\n")
    assert content_digest(c) == content_digest(d)
    d.write_text("n_fallback,sqnr_db,latency_ms_b1\n0,45.3,0.0411\n1,51.3,0.0290\n")
    assert content_digest(c) != content_digest(d)

    def stats(path, seconds, x):
        header = np.frombuffer(json.dumps({"num_samples": 4, "seconds": seconds}).encode(), dtype=np.uint8)
        np.savez_compressed(path, __header__=header, x=x)

    e, f = tmp_path / "e.npz", tmp_path / "f.npz"
    stats(e, 1.25, np.arange(4.0))
    stats(f, 3.5, np.arange(4.0))
    assert file_digest(e) != file_digest(f) and content_digest(e) == content_digest(f)
    stats(f, 1.25, np.arange(4.0) + 1)
    assert content_digest(e) != content_digest(f)


def test_compare_says_inputs_first_then_outputs():
    old = {"stem": "/r/q", "versions": {"onnx": "1.0"}, "model": {"path": "m.onnx", "fingerprint": "a"},
           "data": {"calibration": {"source": "4 images from 'c'", "fingerprint": "d1"}, "evaluation": None},
           "preparation": {"inputs": {"x": {"size": [2, 2], "sources": {"size": "flag"}}}},
           "tensors": {"t": {"amax": 1.0}}, "files": {"q.onnx": "h1"}}
    same = dict(old, stem="/r/q.replay", preparation={"inputs": {"x": {"size": [2, 2], "sources": {"size": "setting"}}}},
                files={"q.replay.onnx": "h1"})
    assert compare(old, same) == []  # where a field came from (flag or setting) is not what it is
    new = dict(same, model={"fingerprint": "b"}, tensors={"t": {"amax": 2.0}}, files={"q.replay.onnx": "h2"})
    assert compare(old, new) == ["the model 'm.onnx' changed (its fingerprint differs)",
                                 "the ranges of 1 tensor(s) differ: t", "file q.onnx: different bytes"]
    assert compare(old, dict(same, files={}))[-1] == "file q.onnx: missing (with the same inputs and versions)"
