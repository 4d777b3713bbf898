"""Session exports: one stem is one result; an export to a reused stem removes the older twins
of another plan (issue 20, item 7), never files of other stems or the user's inputs."""
import numpy as np
import pytest
import tiny_models

from workbench.errors import WorkbenchError
from workbench.outputs.names import export_path, recipe_path, stem_files
from workbench.session import Session


@pytest.fixture
def tiny(tmp_path):
    model = tiny_models.save(tiny_models.small_cnn(), tmp_path / "cnn.onnx")
    calib = tmp_path / "calib"
    calib.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        np.save(calib / f"b{i}.npy", rng.standard_normal((4, 3, 16, 16)).astype(np.float32))
    s = Session(model, calib, batch_size=4, method="minmax", project=tmp_path / "proj")
    s.calibrate()
    return s


def _names(stem) -> set:
    return {p.name for p in stem_files(stem)}


def _other_plan(s) -> None:
    node = s.plan.int8_nodes()[0]
    s.set_precision([node], "fp16")


def _neighbours(stem) -> dict:
    """Files beside the stem that are not of it: another stem, a longer stem, a user's notes."""
    folder = stem.parent
    folder.mkdir(parents=True, exist_ok=True)
    files = {folder / "other.onnx": b"other stem", folder / f"{stem.name}2.ort.onnx": b"longer stem",
             folder / f"{stem.name}.quant.onnx": b"a stem of its own", folder / "notes.txt": b"user notes"}
    for path, data in files.items():
        path.write_bytes(data)
    return files


def test_ort_then_qdq_of_another_plan_removes_the_older_ort_twin(tiny):
    s = tiny
    stem = s.export_stem()
    others = _neighbours(stem)
    ort = s.export("ort")
    assert ort == export_path(stem, "ort") and ort.exists()
    _other_plan(s)
    s.export("qdq")
    names = _names(stem)
    assert f"{stem.name}.ort.onnx" not in names  # the earlier plan's twin went with the new result
    assert {f"{stem.name}.onnx", f"{stem.name}.plan.json", f"{stem.name}.calib.cache",
            recipe_path(stem).name} <= names
    assert all(p.read_bytes() == data for p, data in others.items())  # other stems and user files untouched


def test_qdq_then_ort_of_another_plan_removes_the_trt_file_plan_and_cache(tiny):
    s = tiny
    stem = s.export_stem()
    others = _neighbours(stem)
    s.export("qdq")
    s.export("explorer")
    assert len(_names(stem)) >= 7  # model, plan, cache + provenance, recipe, ranges, overlays
    _other_plan(s)
    s.export("ort")
    assert _names(stem) == {f"{stem.name}.ort.onnx"}
    assert all(p.read_bytes() == data for p, data in others.items())


def test_twins_of_the_same_plan_stay_together(tiny):
    s = tiny
    stem = s.export_stem()
    qdq = s.export("qdq")
    s.export("ort")
    s.export("ranges")
    assert {f"{stem.name}.onnx", f"{stem.name}.ort.onnx", f"{stem.name}.plan.json"} <= _names(stem)
    # the same plan again, but the TensorRT file was changed on disk since: not a twin of this export
    qdq.write_bytes(b"edited by hand")
    s.export("cpu_uint8")
    assert f"{stem.name}.onnx" not in _names(stem) and f"{stem.name}.ort.onnx" in _names(stem)


def test_a_stem_file_of_an_earlier_session_is_replaced(tiny, tmp_path):
    s = tiny
    stem = s.export_stem()
    stem.parent.mkdir(parents=True)
    stale = export_path(stem, "cpu_uint8")
    stale.write_bytes(b"from another run")
    s.export("qdq")
    assert not stale.exists()


def test_the_users_model_with_a_stem_name_is_never_removed(tiny, tmp_path):
    s = tiny
    model = s.model_info.path
    before = model.read_bytes()
    out = s.export("ort", tmp_path / "cnn.ort.onnx", overwrite=True)  # stem tmp/cnn: the model is its ".onnx"
    assert out.exists() and model.read_bytes() == before
    _other_plan(s)
    s.export("ranges", tmp_path / "cnn.ranges.json", overwrite=True)
    assert model.read_bytes() == before and not out.exists()


def test_outside_the_project_an_older_twin_needs_overwrite(tiny, tmp_path):
    s = tiny
    out = tmp_path / "mine" / "m.onnx"
    s.export("qdq", out)
    _other_plan(s)
    with pytest.raises(WorkbenchError, match=r"m\.onnx.*earlier export.*overwrite=True"):
        s.export("ort", tmp_path / "mine" / "m.ort.onnx")
    assert out.exists() and not (tmp_path / "mine" / "m.ort.onnx").exists()  # nothing was written
    s.export("ort", tmp_path / "mine" / "m.ort.onnx", overwrite=True)
    assert _names(tmp_path / "mine" / "m") == {"m.ort.onnx"}
