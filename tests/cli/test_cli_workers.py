"""``--workers`` / ``--scheduler``: one argument group on calibrate, quantize, sensitivity and
autoprec; the auto range search run by worker processes writes the same files, bit for bit."""
import json

import numpy as np
import pytest

import realistic_models as R
import tiny_models
from workbench.cli import main
from workbench.search import executor as ex


def _folder(path, samples):
    path.mkdir()
    for i, s in enumerate(samples):
        np.save(path / f"{i:02d}.npy", s["image"])
    return path


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    root = tmp_path_factory.mktemp("workers")
    model = tiny_models.save(R.classifier_relu6(), root / "m.onnx")
    return model, _folder(root / "calib", R.image_data(16, seed=1)), _folder(root / "eval", R.image_data(8, seed=2))


def _quantize(model, calib, evald, out, *extra):
    argv = ["quantize", model, "--data", str(calib), "--eval-data", str(evald), "--no-improve", "--no-eval",
            "--auto-samples", "8", "-q", "-o", str(out), *extra]
    assert main(argv) == 0
    return {p.name: p.read_bytes() for p in sorted(out.parent.iterdir())
            if p.name.startswith(out.stem + ".") and not p.name.endswith(".recipe.json")}


def test_quantize_with_workers_writes_the_same_files(classifier, tmp_path, capsys, monkeypatch):
    model, calib, evald = classifier
    sent = []  # evaluations handed to the worker processes
    original = ex.LocalProcesses._run_many
    monkeypatch.setattr(ex.LocalProcesses, "_run_many",
                        lambda self, bound, configs, *a: sent.append(len(configs)) or original(self, bound, configs, *a))
    (tmp_path / "here").mkdir()
    (tmp_path / "there").mkdir()
    here = _quantize(model, calib, evald, tmp_path / "here" / "q.onnx")
    said = capsys.readouterr().out
    there = _quantize(model, calib, evald, tmp_path / "there" / "q.onnx", "--workers", "2")
    said_there = capsys.readouterr().out
    assert "Evaluations run on 2 local worker process(es)" in said_there
    assert "Evaluations run on" not in said
    assert sum(sent) >= 5  # the auto search's method scores at least went to the workers
    # the auto search ran (and chose something) in both: the amax depend on its runs
    assert "auto ranges:" in said and "auto ranges:" in said_there
    plan = json.loads(here["q.plan.json"])
    assert plan and set(here) == set(there)
    assert {"q.onnx", "q.plan.json"} <= set(here) and any(n.endswith(".cache") for n in here)
    for name in here:
        if name.endswith(".cache.json"):  # the cache's provenance names the file it sits beside
            a, b = json.loads(here[name]), json.loads(there[name])
            assert a.pop("exported_model") != b.pop("exported_model")
            assert a == b and a["method"] == "auto"
        else:
            assert here[name] == there[name], f"{name} differs between in-process and --workers 2"


def test_calibrate_with_workers_chooses_the_same_amax(classifier, tmp_path, capsys):
    model, calib, evald = classifier
    amax = {}
    for label, extra in (("here", []), ("there", ["--workers", "2"])):
        argv = ["calibrate", model, "--data", str(calib), "--eval-data", str(evald), "--auto-samples", "8",
                "-q", "-o", str(tmp_path / label), *extra]
        assert main(argv) == 0
        ranges = json.loads((tmp_path / label / "ranges.json").read_text())
        assert ranges["method"] == "auto" and ranges["search"]["evaluations"] > len(ranges["tensors"])
        amax[label] = {t: (r["amax"], r["chosen"]) for t, r in ranges["tensors"].items()}
    assert "Evaluations run on 2 local worker process(es)" in capsys.readouterr().out
    assert amax["here"] == amax["there"]
    assert (tmp_path / "here" / "calibration.cache").read_bytes() == (tmp_path / "there" / "calibration.cache").read_bytes()


def test_one_executor_group_on_four_commands(capsys):
    for cmd in ("calibrate", "quantize", "sensitivity", "autoprec"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = capsys.readouterr().out
        assert "sweep execution" in text and "--workers N" in text and "--scheduler" in text, cmd


def test_bad_worker_options_are_refused_before_any_work(classifier, tmp_path, capsys):
    model, calib, _ = classifier
    assert main(["calibrate", model, "--data", str(calib), "-q", "-o", str(tmp_path / "c"), "--workers", "0"]) == 2
    err = capsys.readouterr().err
    assert "--workers" in err and "Traceback" not in err
    assert not (tmp_path / "c").exists()
    with pytest.raises(SystemExit) as e:  # argparse: one or the other
        main(["quantize", model, "--data", str(calib), "-o", str(tmp_path / "q.onnx"), "--workers", "2",
              "--scheduler", "tcp://127.0.0.1:1"])
    assert e.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
