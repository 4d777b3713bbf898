"""Input preparation as one object: fields from the model, the user, presets and guesses, and the
refusals that come before any work (workbench.data.prepare)."""
import json

import numpy as np
import pytest
from PIL import Image

import prep_models
import tiny_models
from workbench.calib.collect import collect_statistics
from workbench.calib.ranges import compute_ranges
from workbench.cli import main
from workbench.data import InputPreparation, open_data
from workbench.data.hints import graph_stride
from workbench.errors import WorkbenchError
from workbench.graph.model import ModelInfo
from workbench.sample import sample_paths
from workbench.session import Session


@pytest.fixture
def detector(tmp_path):
    return tiny_models.save(prep_models.dynamic_detector(), tmp_path / "det.onnx")


def _photos(folder, n=2, size=(40, 30), seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_dynamic_detector_keeps_each_page_size_rounded_to_the_graph_stride(tmp_path, detector):
    info = ModelInfo.from_path(detector)
    assert graph_stride(info, "image") == (32, True)
    data = open_data(prep_models.pages(tmp_path / "pages"), info)
    f = data.preparation.image_input
    assert f.size == (None, None) and f.stride == 32 and f.resize == "stretch"
    assert f.sources["stride"] == "model graph" and f.sources["size"].startswith("model (dynamic")
    # three sizes, 80x150 rounded to the nearest multiples of 32: 96x160
    assert data.shapes() == {(64, 96): 3, (96, 128): 3, (96, 160): 3}
    by_two = [b["image"].shape for b in data.iter_batches(2)]
    assert by_two == [(2, 3, 64, 96), (1, 3, 64, 96), (2, 3, 96, 128), (1, 3, 96, 128),
                      (2, 3, 96, 160), (1, 3, 96, 160)]
    # the sample order (and so the first sample, which sets the histograms' bins) does not depend on
    # the batch size: every amax is the same at batch size 1 and 4
    amax = [compute_ranges(collect_statistics(info, data, batch_size=bs, progress=False)).amax()
            for bs in (1, 4)]
    assert amax[0].keys() == amax[1].keys() and all(amax[0][t] == amax[1][t] for t in amax[0])
    # without rounding the 80x150 page is refused, naming it, before ONNX Runtime sees it
    none = open_data(tmp_path / "pages", info, preparation={"resize": "none"})
    with pytest.raises(WorkbenchError, match=r"page02\.png' is 150x80 .* needs 160x96"):
        list(none.iter_batches(4))


def test_dynamic_detector_calibrates_through_the_api_from_mixed_sizes(tmp_path, detector):
    s = Session(detector, prep_models.pages(tmp_path / "pages", per=6))
    ranges = s.calibrate()  # the default method, judged on held-out pages of every size
    assert s.last_calibration["samples"] > 0 and len(ranges.amax()) > 10
    build = s.rebuild()
    assert build.summary["sqnr_db"] > 10  # outputs of several sizes compared row by row
    assert s.evaluator.num_samples >= 4


def test_a_size_off_the_stride_is_refused_before_work_with_both_shapes(tmp_path, detector):
    info = ModelInfo.from_path(detector)
    with pytest.raises(WorkbenchError) as err:
        open_data(prep_models.pages(tmp_path / "pages", per=1), info, preparation={"size": (100, 128)})
    text = str(err.value)
    assert "not a multiple of the model's stride 32" in text
    assert "(N, 3, H, W)" in text and "(N, 3, 100, 128)" in text


def test_a_size_the_model_cannot_take_is_refused_by_the_cli_before_work(tmp_path, capsys):
    model = tiny_models.save(tiny_models.small_cnn(size=16), tmp_path / "cnn.onnx")
    photos = _photos(tmp_path / "photos")
    out = tmp_path / "out"
    assert main(["calibrate", str(model), "--data", str(photos), "--crop", "25", "-q", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "model expects 16x16" in err and "(N, 3, 16, 16)" in err and "(N, 3, 25, 25)" in err
    assert "--crop" not in err or "Traceback" not in err
    assert not out.exists()
    # a layout the model cannot take: the channel axis of NHWC would be 16
    assert main(["calibrate", str(model), "--data", str(photos), "--layout", "NHWC", "-q", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "NHWC channel axis has 16 entries" in err and "(N, 16, 16, 3)" in err and "(N, 3, 16, 16)" in err


def test_cli_prints_the_preparation_and_warns_when_it_guessed(tmp_path, capsys):
    model = tiny_models.save(tiny_models.small_cnn(size=16), tmp_path / "cnn.onnx")
    photos = _photos(tmp_path / "photos", n=3)
    args = ["calibrate", str(model), "--data", str(photos), "--method", "minmax", "-q"]
    assert main([*args, "-o", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "Input preparation:" in out and "from guess" in out and "WARNING: input preparation guessed" in out
    assert main([*args, "--preset", "unit", "--size", "16", "16", "-o", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "from preset 'unit'" in out and "from flag" in out and "input preparation guessed" not in out


def test_the_sample_finds_its_own_normalisation_in_its_recipe():
    info = ModelInfo.from_path(sample_paths()["model"])
    prep = InputPreparation.resolve(info)
    f = prep.image_input
    assert (f.scale, f.mean, f.std, f.size, f.resize) == (1.0, (127.0,) * 3, (128.0,) * 3, (224, 224), "crop")
    assert "recipe 'efficientnet_lite0.preparation.json'" in f.sources["mean"]
    assert prep.warning() is None and "WARNING" not in prep.describe()
    # a flag still wins, and is said so
    g = InputPreparation.resolve(info, {"preset": "imagenet"}, origin="flag").image_input
    assert g.sources["mean"] == "preset 'imagenet'" and g.mean == (0.485, 0.456, 0.406)


def test_nhwc_model_gets_channels_last_from_its_dims(tmp_path):
    info = ModelInfo(prep_models.nhwc_cnn())
    photos = _photos(tmp_path / "photos", n=1)
    nhwc = open_data(photos, info, preparation={"preset": "unit"})
    f = nhwc.preparation.image_input
    assert f.layout == "NHWC" and f.sources["layout"] == "model (dims)" and f.size == (16, 16)
    x = next(nhwc.iter_batches())["image"]
    assert x.shape == (1, 16, 16, 3)
    nchw = open_data(photos, ModelInfo(tiny_models.small_cnn(size=16)), preparation={"preset": "unit"})
    np.testing.assert_array_equal(x[0], next(nchw.iter_batches())["input"][0].transpose(1, 2, 0))
    from workbench.backends.ort import OrtRunner

    assert OrtRunner(info.model).activate().infer({"image": x})["logits"].shape == (1, 4)


def test_bgr_model_says_so_in_its_metadata(tmp_path):
    info = ModelInfo(prep_models.bgr_cnn())
    photos = _photos(tmp_path / "photos", n=1, size=(16, 16))
    data = open_data(photos, info, preparation={"resize": "none"})
    f = data.preparation.image_input
    assert f.channel_order == "BGR" and f.sources["channel_order"] == "model metadata"
    assert (f.scale, f.mean, f.std) == (1.0, (0.0,), (1.0,)) and f.sources["scale"] == "model metadata"
    x = next(data.iter_batches())["input"][0]
    rgb = np.asarray(Image.open(photos / "p0.png").convert("RGB"), np.float32)
    np.testing.assert_array_equal(x, rgb[:, :, ::-1].transpose(2, 0, 1))
    # the user can still say otherwise
    assert open_data(photos, info, preparation={"channel_order": "RGB"}).preparation.image_input.channel_order == "RGB"


def test_letterbox_keeps_the_aspect_ratio_and_pads(tmp_path):
    info = ModelInfo(tiny_models.small_cnn(size=16))
    photos = _photos(tmp_path / "photos", n=1, size=(32, 16))  # 2:1 -> 16x8 in the middle of 16x16
    req = {"resize": "letterbox", "pad_value": 114, "scale": 1.0, "mean": 0.0, "std": 1.0}
    x = next(open_data(photos, info, preparation=req).iter_batches())["input"][0]
    assert np.all(x[:, :4] == 114) and np.all(x[:, 12:] == 114)
    inner = np.asarray(Image.open(photos / "p0.png").convert("RGB").resize((16, 8), Image.BILINEAR), np.float32)
    np.testing.assert_array_equal(x[:, 4:12], inner.transpose(2, 0, 1))
    # stretch fills the square, non-square targets work
    y = next(open_data(photos, info, preparation={**req, "resize": "stretch"}).iter_batches())["input"][0]
    assert not np.any(y[:, :4] == 114)


def test_preparation_round_trips_and_refuses_bad_values(tmp_path):
    info = ModelInfo(tiny_models.small_cnn(size=16))
    prep = InputPreparation.resolve(info, {"preset": "caffe", "resize": "letterbox", "pad_value": 7})
    again = InputPreparation.from_dict(json.loads(json.dumps(prep.to_dict())))
    assert again.to_dict() == prep.to_dict() and again.checked(info) is again
    assert again.image_input.sources["pad_value"] == "flag"
    for bad, msg in (({"std": [1, 0, 1]}, "must not be 0"), ({"resize": "squash"}, "stretch or crop"),
                     ({"size": (0, -3)}, "whole pixels"), ({"sise": 3}, "Unknown input preparation"),
                     ({"preset": "nope"}, "Unknown preprocessing preset")):
        with pytest.raises(WorkbenchError, match=msg):
            InputPreparation.resolve(info, bad)


def test_session_stores_the_preparation_and_loads_it_back(tmp_path):
    model = tiny_models.save(tiny_models.small_cnn(size=16), tmp_path / "cnn.onnx")
    photos = _photos(tmp_path / "photos", n=2)
    s = Session(model, photos)
    with pytest.raises(WorkbenchError, match="model expects 16x16"):
        s.set_data(photos, preparation={"size": 20})
    assert s.data_settings.preparation is None  # refused: the settings stay as they were
    s.set_data(photos, preparation={"preset": "unit", "resize": "letterbox"})
    assert s.preparation.image_input.sources["resize"] == "setting"
    s.save(tmp_path / "proj")
    loaded = Session.load(tmp_path / "proj")
    assert loaded.data_settings.preparation == {"preset": "unit", "resize": "letterbox"}
    assert loaded.preparation.image_input.resize == "letterbox"
    assert loaded.data.fingerprint() == s.data.fingerprint()
