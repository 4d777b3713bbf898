"""`workbench lab` opens JupyterLab on the quickstart notebook, not on the Launcher."""
from workbench.cli.lab import QUICKSTART, lab_command


def test_lab_opens_the_quickstart_notebook(tmp_path):
    (tmp_path / QUICKSTART).write_text("{}")
    cmd = lab_command(tmp_path, port=8999, no_browser=True)
    assert f"--LabApp.default_url=/lab/tree/{QUICKSTART}" in cmd
    assert f"--ServerApp.root_dir={tmp_path}" in cmd and "--port=8999" in cmd
    assert not any(a.endswith(".ipynb") and not a.startswith("--") for a in cmd)  # a bare path opens the Launcher
    assert not any("token" in a for a in cmd)  # token authentication stays on
    empty = tmp_path / "other"
    empty.mkdir()
    assert not any("default_url" in a for a in lab_command(empty))
