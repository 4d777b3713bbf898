"""TensorRT calibration cache: bit-exact scales, format, parse errors, staleness helpers."""
from __future__ import annotations

import numpy as np
import pytest

from workbench.backends.trt_cache import CalibrationCache, compare_cache, format_calibration_cache, hex_to_scale, parse_calibration_cache, read_calibration_cache, scale_to_hex, write_calibration_cache
from workbench.errors import WorkbenchError


def numpy_hex(scale: float) -> str:
    """Independent encoder: big-endian float32 bytes via numpy."""
    return np.array(scale, dtype=">f4").tobytes().hex()


def test_known_bit_patterns():
    assert scale_to_hex(6.0 / 127) == "3d418306"
    assert scale_to_hex(1.0) == "3f800000"
    assert hex_to_scale("3f800000") == 1.0
    assert hex_to_scale("3c008912") == pytest.approx(0.0078452, rel=1e-4)
    assert hex_to_scale("3C008912") == hex_to_scale("3c008912")
    assert hex_to_scale("3d418306") * 127 == pytest.approx(6.0, rel=1e-7)


def test_random_scales_round_trip_bit_exactly():
    rng = np.random.default_rng(0)
    scales = np.exp(rng.uniform(-20, 10, 2000))
    for s in scales:
        h = scale_to_hex(s)
        assert h == numpy_hex(s)
        assert hex_to_scale(h) == float(np.float32(s))
        assert scale_to_hex(hex_to_scale(h)) == h


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf"), 1e-50, 1e39])
def test_unrepresentable_scales_are_rejected(bad):
    with pytest.raises(WorkbenchError, match="positive finite float32"):
        scale_to_hex(bad)


def test_format_is_exactly_tensorrt_layout():
    text = format_calibration_cache({"input": 1.0, "conv1/out:0": 6.0 / 127}, "MinMaxCalibration", 8601)
    assert text == "TRT-8601-MinMaxCalibration\ninput: 3f800000\nconv1/out:0: 3d418306\n"
    assert format_calibration_cache({}).startswith("TRT-8600-EntropyCalibration2\n")


def test_parse_hand_written_cache_with_colons_and_crlf():
    text = "TRT-8601-EntropyCalibration2\r\ndata: 3c008912\r\nmodel/x:0: 3f800000\r\na::b: 3d418306\r\n\r\n"
    cache = parse_calibration_cache(text)
    assert cache.version == 8601 and cache.algorithm == "EntropyCalibration2"
    assert list(cache.scales) == ["data", "model/x:0", "a::b"]
    assert cache.scales["model/x:0"] == 1.0
    assert cache.amax()["a::b"] == pytest.approx(6.0, rel=1e-7)
    assert cache.is_known_algorithm


def test_write_read_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    scales = {f"layer{i}/out:{i % 3}": float(s) for i, s in enumerate(rng.uniform(1e-4, 2.0, 50))}
    path = write_calibration_cache(tmp_path / "calib.cache", scales, "EntropyCalibration2", 10000)
    assert [p.name for p in tmp_path.iterdir()] == ["calib.cache"]  # no temp file left
    cache = read_calibration_cache(path)
    assert (cache.version, cache.algorithm) == (10000, "EntropyCalibration2")
    assert list(cache.scales) == list(scales)
    for name, s in scales.items():
        assert cache.scales[name] == float(np.float32(s))
    # re-writing what was read gives the same bytes
    again = write_calibration_cache(tmp_path / "again.cache", cache.scales, cache.algorithm, cache.version)
    assert again.read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    "text, line, what",
    [
        ("", 1, "header"),
        ("TRT-abc-Entropy\n", 1, "header"),
        ("calibration\nx: 3f800000\n", 1, "header"),
        ("TRT-8600-EntropyCalibration2\nx 3f800000\n", 2, "8 hex"),
        ("TRT-8600-EntropyCalibration2\nx: 3f80000\n", 2, "8 hex"),
        ("TRT-8600-EntropyCalibration2\nx: 3f800000\n: 3f800000\n", 3, "8 hex"),
        ("TRT-8600-EntropyCalibration2\nx: 3f800000\ny: zz800000\n", 3, "8 hex"),
        ("TRT-8600-EntropyCalibration2\nx: 3f800000\n\nx: 3f800000\n", 4, "twice"),
    ],
)
def test_bad_lines_name_file_and_line(text, line, what):
    with pytest.raises(WorkbenchError, match=f"my.cache, line {line}:.*{what}"):
        parse_calibration_cache(text, source="my.cache")


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(WorkbenchError, match="nope.cache' does not exist"):
        read_calibration_cache(tmp_path / "nope.cache")
    binary = tmp_path / "model.onnx"
    binary.write_bytes(b"\x08\x07\x12\xff\xfe")
    with pytest.raises(WorkbenchError, match="model.onnx"):
        read_calibration_cache(binary)
    bad = tmp_path / "bad.cache"
    bad.write_text("TRT-8600-EntropyCalibration2\ninput 3f800000\n")
    with pytest.raises(WorkbenchError, match=r"bad.cache, line 2"):
        read_calibration_cache(bad)


def test_format_rejects_bad_names_and_headers():
    with pytest.raises(WorkbenchError, match="tensor name"):
        format_calibration_cache({"a\nb": 1.0})
    with pytest.raises(WorkbenchError, match="tensor name"):
        format_calibration_cache({"": 1.0})
    with pytest.raises(WorkbenchError, match="tensor 'x'.*positive"):
        format_calibration_cache({"x": 0.0})
    with pytest.raises(WorkbenchError, match="algorithm"):
        format_calibration_cache({"x": 1.0}, algorithm="Entropy Calibration")
    with pytest.raises(WorkbenchError, match="version"):
        format_calibration_cache({"x": 1.0}, version="8600")


def test_compare_cache_reports_missing_and_extra():
    cache = CalibrationCache(8600, "EntropyCalibration2", {"a": 1.0, "b": 1.0, "old": 1.0})
    cmp = compare_cache(cache, ["a", "b", "c", "d"])
    assert cmp.missing == ["c", "d"] and cmp.extra == ["old"] and not cmp.matches
    assert "2 tensor(s) missing" in cmp.describe() and "'old'" in cmp.describe()
    ok = compare_cache(cache, ["old", "b", "a", "a"])
    assert ok.matches and ok.missing == [] and ok.extra == []


def test_stale_caches_are_refused(tmp_path):
    """A cache for another network (provenance or tensor names) or other data is never reused."""
    import tiny_models
    from workbench.backends.trt_cache import check_calibration_cache, write_calibration_cache
    from workbench.errors import StaleError
    from workbench.graph.model import ModelInfo

    info = ModelInfo(tiny_models.small_cnn())
    other = ModelInfo(tiny_models.small_cnn(seed=7))  # same tensor names, other weights
    path = tmp_path / "c.cache"
    write_calibration_cache(path, {"input": 0.01, "r1": 0.05}, provenance={
        "model_fingerprint": info.fingerprint(), "data_fingerprint": "abc"})
    assert check_calibration_cache(path, info, data_fingerprint="abc").scales["r1"] == pytest.approx(0.05)
    with pytest.raises(StaleError, match="another model"):
        check_calibration_cache(path, other)
    with pytest.raises(StaleError, match="other calibration data"):
        check_calibration_cache(path, info, data_fingerprint="xyz")
    foreign = tmp_path / "foreign.cache"  # no sidecar: written by TensorRT for another network
    foreign.write_text("TRT-8600-EntropyCalibration2\ninput: 3c010204\n/backbone/conv1/Conv_output_0: 3d418306\n")
    with pytest.raises(StaleError, match="'/backbone/conv1/Conv_output_0'"):
        check_calibration_cache(foreign, info)
