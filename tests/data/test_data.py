import numpy as np
import pytest
from PIL import Image

import tiny_models
from workbench.data import ImagePreprocess, PRESETS, open_data
from workbench.errors import WorkbenchError
from workbench.graph.model import ModelInfo


@pytest.fixture
def cnn():
    return ModelInfo(tiny_models.small_cnn(size=16))


def _photos(folder, n=5, size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(folder / f"p{i}.png")
    return folder


def test_image_folder_batches_are_deterministic_and_preprocessed(tmp_path, cnn):
    folder = _photos(tmp_path / "img")
    pre = ImagePreprocess(resize=20, crop=16, scale=1.0, mean=(127.0,) * 3, std=(128.0,) * 3)
    data = open_data(folder, cnn, preprocess=pre)
    batches = list(data.iter_batches(2))
    assert [b["input"].shape for b in batches] == [(2, 3, 16, 16), (2, 3, 16, 16), (1, 3, 16, 16)]
    again = list(data.iter_batches(2))
    assert all(np.array_equal(a["input"], b["input"]) for a, b in zip(batches, again))
    # reference: resize short side 30 -> 20 (40x30 -> 27x20), centre crop 16, (x-127)/128, CHW
    img = Image.open(folder / "p0.png").convert("RGB").resize((27, 20), Image.BILINEAR)
    left, top = (27 - 16) // 2, (20 - 16) // 2
    ref = (np.asarray(img.crop((left, top, left + 16, top + 16)), np.float32) - 127) / 128
    np.testing.assert_allclose(batches[0]["input"][0], ref.transpose(2, 0, 1), atol=1e-6)


def test_bgr_and_nhwc(tmp_path):
    folder = _photos(tmp_path / "img", n=1, size=(16, 16))
    model = tiny_models.small_cnn(size=16)
    info = ModelInfo(model)
    rgb = open_data(folder, info, preprocess=ImagePreprocess(None, 16, "RGB", 1.0, (0,) * 3, (1,) * 3))
    bgr = open_data(folder, info, preprocess=ImagePreprocess(None, 16, "BGR", 1.0, (0,) * 3, (1,) * 3))
    a = next(rgb.iter_batches())["input"][0]
    b = next(bgr.iter_batches())["input"][0]
    np.testing.assert_array_equal(a[::-1], b)
    assert rgb.fingerprint() != bgr.fingerprint()


def test_limit_and_fingerprint_changes_with_content(tmp_path, cnn):
    folder = _photos(tmp_path / "img", n=4)
    pre = ImagePreprocess(resize=20, crop=16)
    d1 = open_data(folder, cnn, preprocess=pre, limit=3)
    assert len(d1) == 3 and sum(b["input"].shape[0] for b in d1.iter_batches(8)) == 3
    fp = d1.fingerprint()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(folder / "p0.png")
    assert open_data(folder, cnn, preprocess=pre, limit=3).fingerprint() != fp


def test_empty_folder_missing_folder_and_corrupt_image(tmp_path, cnn):
    (tmp_path / "empty").mkdir()
    with pytest.raises(WorkbenchError, match="has no image or .npy/.npz files"):
        open_data(tmp_path / "empty", cnn)
    with pytest.raises(WorkbenchError, match="does not exist"):
        open_data(tmp_path / "missing", cnn)
    folder = _photos(tmp_path / "img", n=2)
    (folder / "broken.jpg").write_bytes(b"not a jpeg at all")
    data = open_data(folder, cnn, preprocess=ImagePreprocess(resize=20, crop=16))
    with pytest.raises(WorkbenchError, match="broken.jpg"):
        list(data.iter_batches(8))


def test_crop_that_does_not_match_the_model_is_refused(tmp_path, cnn):
    folder = _photos(tmp_path / "img", n=1)
    with pytest.raises(WorkbenchError, match="expects 16x16"):
        open_data(folder, cnn, preprocess=PRESETS["imagenet"])


def test_npy_and_npz_folders(tmp_path, cnn):
    folder = tmp_path / "arr"
    folder.mkdir()
    np.save(folder / "a.npy", np.ones((3, 3, 16, 16), np.float64))  # a batch of 3, float64 is cast
    np.save(folder / "b.npy", np.zeros((3, 16, 16), np.float32))  # one sample
    data = open_data(folder, cnn)
    assert len(data) == 4
    batches = list(data.iter_batches(8))
    assert batches[0]["input"].shape == (4, 3, 16, 16) and batches[0]["input"].dtype == np.float32

    two = ModelInfo(tiny_models.two_input_matmul())
    z = tmp_path / "npz"
    z.mkdir()
    np.savez(z / "s0.npz", input_ids=np.zeros((2, 5), np.int32), attention_mask=np.ones((2, 5), np.float32))
    batch = next(open_data(z, two).iter_batches(8))
    assert batch["input_ids"].dtype == np.int64 and batch["input_ids"].shape == (2, 5)


def test_bad_arrays_name_the_file_and_tensor(tmp_path, cnn):
    folder = tmp_path / "arr"
    folder.mkdir()
    np.save(folder / "wrong.npy", np.ones((2, 3, 8, 8), np.float32))
    with pytest.raises(WorkbenchError, match=r"wrong.npy.*'input'.*dimension 2 must be 16"):
        list(open_data(folder, cnn).iter_batches(8))
    two = ModelInfo(tiny_models.two_input_matmul())
    z = tmp_path / "npz"
    z.mkdir()
    np.savez(z / "s0.npz", input_ids=np.zeros((2, 5), np.int64), mask=np.ones((2, 5), np.float32))
    with pytest.raises(WorkbenchError, match=r"s0.npz.*unknown input 'mask'.*'attention_mask'"):
        list(open_data(z, two).iter_batches(8))
    np.savez(z / "s0.npz", input_ids=np.zeros((2, 5), np.float32), attention_mask=np.ones((2, 5), np.float32))
    with pytest.raises(WorkbenchError, match="s0.npz.*input 'input_ids': expected dtype int64, got float32"):
        list(open_data(z, two).iter_batches(8))


LOADER = """
import numpy as np

def load_data():
    for i in range(3):
        yield {"input_ids": np.full((2, 4), i, np.int64), "attention_mask": np.ones((2, 4), np.float32)}

def other():
    yield {"input_ids": np.zeros((1, 4), np.int64)}

def broken():
    yield {"input_ids": np.zeros((1, 4), np.int64), "attention_mask": np.ones((1, 4), np.float32)}
    raise RuntimeError("disk on fire")
"""


def test_loader_script_multi_input_int64(tmp_path):
    script = tmp_path / "loader.py"
    script.write_text(LOADER)
    two = ModelInfo(tiny_models.two_input_matmul())
    batches = list(open_data(None, two, loader_script=str(script)).iter_batches())
    assert len(batches) == 3 and batches[2]["input_ids"][0, 0] == 2
    limited = list(open_data(None, two, loader_script=str(script), limit=3).iter_batches())
    assert sum(b["input_ids"].shape[0] for b in limited) == 3
    with pytest.raises(WorkbenchError, match=r"loader.py:other.*missing input 'attention_mask'"):
        list(open_data(None, two, loader_script=f"{script}:other").iter_batches())
    with pytest.raises(WorkbenchError, match="raised at item 1: RuntimeError: disk on fire"):
        list(open_data(None, two, loader_script=f"{script}:broken").iter_batches())
    with pytest.raises(WorkbenchError, match="has no function 'nothing'"):
        list(open_data(None, two, loader_script=f"{script}:nothing").iter_batches())


def test_loader_script_that_fails_to_import(tmp_path):
    script = tmp_path / "bad.py"
    script.write_text("import numpy as np\nraise ValueError('bad config')\n")
    two = ModelInfo(tiny_models.two_input_matmul())
    with pytest.raises(WorkbenchError, match="raised while loading: ValueError: bad config"):
        list(open_data(None, two, loader_script=str(script)).iter_batches())


def test_image_folder_refuses_multi_input_models(tmp_path):
    folder = _photos(tmp_path / "img", n=1)
    with pytest.raises(WorkbenchError, match="one float image input"):
        open_data(folder, ModelInfo(tiny_models.two_input_matmul()))


def test_array_limit_reads_and_fingerprints_only_the_files_it_needs(tmp_path, cnn):
    folder = tmp_path / "arr"
    folder.mkdir()
    for i in range(6):
        np.save(folder / f"{i}.npy", np.full((2, 3, 16, 16), i, np.float32))  # 2 samples per file
    data = open_data(folder, cnn, limit=3)
    assert len(data) == 3
    values = np.concatenate([b["input"] for b in data.iter_batches(8)])[:, 0, 0, 0]
    assert list(values) == [0, 0, 1]
    fp = data.fingerprint()
    np.save(folder / "5.npy", np.zeros((2, 3, 16, 16), np.float32))  # a file beyond the limit
    assert open_data(folder, cnn, limit=3).fingerprint() == fp
    np.save(folder / "1.npy", np.zeros((2, 3, 16, 16), np.float32))  # a file within it
    assert open_data(folder, cnn, limit=3).fingerprint() != fp


# -- reliability of the inputs (issue 13) -------------------------------------------
def test_sixteen_bit_grey_png_matches_its_eight_bit_twin(tmp_path, cnn):
    g = np.random.default_rng(1).integers(0, 256, (20, 24), dtype=np.uint8)
    d8, d16 = tmp_path / "g8", tmp_path / "g16"
    d8.mkdir()
    d16.mkdir()
    Image.fromarray(g).save(d8 / "a.png")
    Image.fromarray(g.astype(np.uint16) * 257).save(d16 / "a.png")
    pre = ImagePreprocess(resize=18, crop=16, scale=1.0, mean=(0.0,), std=(1.0,))
    x8 = next(open_data(d8, cnn, preprocess=pre).iter_batches())["input"]
    x16 = next(open_data(d16, cnn, preprocess=pre).iter_batches())["input"]
    assert x16.max() <= 255.0 and (x16 > 254.0).mean() < 0.05  # not saturated
    np.testing.assert_allclose(x16, x8, atol=1.0)  # resized in float vs in 8 bits: within one level


def test_32_bit_integer_image_beyond_16_bits_is_refused():
    """Older Pillow opens 16-bit PNGs as mode "I": 0..65535 is taken as 16 bits, more is refused."""
    from workbench.data.folder import ImageFolderData

    ok = ImageFolderData._high_to_float(Image.fromarray(np.full((4, 4), 65535, np.int32)), "ok.png")
    assert ok.mode == "F" and np.asarray(ok).max() == 65535
    with pytest.raises(WorkbenchError, match="big.png.*32-bit integer image with values 70000..70000"):
        ImageFolderData._high_to_float(Image.fromarray(np.full((4, 4), 70000, np.int32)), "big.png")


def test_preprocessing_values_are_checked(tmp_path, cnn):
    with pytest.raises(WorkbenchError, match="std .* must not be 0"):
        ImagePreprocess(std=(1.0, 0.0, 1.0))
    with pytest.raises(WorkbenchError, match="must be finite"):
        ImagePreprocess(mean=(float("inf"),))
    with pytest.raises(WorkbenchError, match="crop .* positive whole number"):
        ImagePreprocess(crop=0)
    with pytest.raises(WorkbenchError, match="Unknown preprocessing setting"):
        ImagePreprocess.from_dict({"resise": 10})
    folder = _photos(tmp_path / "img", n=1)
    with pytest.raises(WorkbenchError, match="has 2 values .* 3 channel"):
        open_data(folder, cnn, preprocess=ImagePreprocess(resize=20, crop=16, mean=(1.0, 2.0)))


def test_hidden_files_and_folders_are_skipped(tmp_path, cnn):
    folder = _photos(tmp_path / "img", n=2)
    (folder / "._p0.png").write_bytes(b"macOS resource fork")
    (folder / ".ipynb_checkpoints").mkdir()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(folder / ".ipynb_checkpoints" / "p9.png")
    assert len(open_data(folder, cnn, preprocess=ImagePreprocess(resize=20, crop=16))) == 2


def test_nonfinite_samples(tmp_path, cnn):
    from workbench.data import DataWarning

    folder = tmp_path / "arr"
    folder.mkdir()
    x = np.ones((2, 3, 16, 16), np.float32)
    x[1, 0, 0, 0] = np.nan
    np.save(folder / "part.npy", x)
    with pytest.warns(DataWarning, match=r"part.npy\[1\]: input 'input' has 1 NaN/Inf value"):
        assert len(list(open_data(folder, cnn).iter_batches(2))) == 1
    x[0] = np.inf
    np.save(folder / "part.npy", x)
    with pytest.raises(WorkbenchError, match=r"part.npy\[0\]: input 'input' is all NaN/Inf"):
        list(open_data(folder, cnn).iter_batches(2))
    with pytest.warns(DataWarning):
        list(open_data(folder, cnn, allow_nonfinite=True).iter_batches(2))


def test_batched_loader_names_the_all_nan_row(tmp_path):
    script = tmp_path / "nan.py"
    script.write_text("import numpy as np\ndef load_data():\n"
                      "    x = np.ones((3, 4), np.float32)\n    x[2] = np.nan\n"
                      "    yield {'input_ids': np.zeros((3, 4), np.int64), 'attention_mask': x}\n")
    two = ModelInfo(tiny_models.two_input_matmul())
    with pytest.raises(WorkbenchError, match=r"item 0: input 'attention_mask' \(sample 2 of the batch\) is all NaN"):
        list(open_data(None, two, loader_script=str(script)).iter_batches())


def test_batch_memory_estimate_counts_activations(tmp_path, cnn, monkeypatch):
    from workbench.data import activation_bytes_per_sample, base

    per_sample = activation_bytes_per_sample(cnn)
    # conv1, relu1, conv2, relu2, add: 8x16x16 floats each; maxpool 8x8x8; gap 8; flatten 8; logits 10
    assert per_sample == (5 * 8 * 16 * 16 + 8 * 8 * 8 + 8 + 8 + 10) * 4
    folder = tmp_path / "arr"
    folder.mkdir()
    np.save(folder / "a.npy", np.ones((64, 3, 16, 16), np.float32))
    monkeypatch.setattr(base, "available_memory", lambda: 40 * per_sample)
    with pytest.raises(WorkbenchError, match=r"Batch size 64 needs about .* \(inputs and activations .*"
                                             r"Use --batch-size 16 or less"):
        next(open_data(folder, cnn).iter_batches(64))
    assert next(open_data(folder, cnn).iter_batches(16))["input"].shape[0] == 16


def test_loader_exit_while_loading_and_no_bytecode_left(tmp_path, cnn):
    script = tmp_path / "exits.py"
    script.write_text("import sys\nsys.exit('no GPU here')\n")
    with pytest.raises(WorkbenchError, match=r"called sys.exit\('no GPU here'\) while loading"):
        list(open_data(None, cnn, loader_script=str(script)).iter_batches())
    assert not (tmp_path / "__pycache__").exists()


def test_loader_returning_a_non_iterable(tmp_path, cnn):
    script = tmp_path / "bad.py"
    script.write_text("def load_data():\n    return 42\n")
    with pytest.raises(WorkbenchError, match="returned int, not an iterable"):
        list(open_data(None, cnn, loader_script=str(script)).iter_batches())


def test_sample_limit_and_batch_size_must_be_positive(tmp_path, cnn):
    folder = _photos(tmp_path / "img", n=1)
    with pytest.raises(WorkbenchError, match="sample limit .* positive whole number, got 0"):
        open_data(folder, cnn, preprocess=ImagePreprocess(resize=20, crop=16), limit=0)
    data = open_data(folder, cnn, preprocess=ImagePreprocess(resize=20, crop=16))
    for bad in (0, -2, 2.5):
        with pytest.raises(WorkbenchError, match="batch size"):
            list(data.iter_batches(bad))
