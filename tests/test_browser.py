"""Start JupyterLab on localhost (token auth on) and drive it with headless Chromium.

Used by tests/test_browser.py. The server runs in a temporary root folder with its own
runtime/config folders, is reached with the token in the URL, and is always shut down.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyter_lab(root: Path, *, timeout: float = 90.0):
    """Run ``jupyter lab`` serving ``root``; yields ``(base_url, token)``.

    Token authentication stays on: the token is random and passed in the URL. The app object
    is exposed in the page (``window.jupyterapp``) so the test can run JupyterLab commands.
    """
    port, token = free_port(), secrets.token_hex(16)
    state = root.parent / f"{root.name}-jupyter-state"
    env = dict(os.environ, JUPYTER_RUNTIME_DIR=str(state / "runtime"),
               JUPYTER_CONFIG_DIR=str(state / "config"), JUPYTERLAB_SETTINGS_DIR=str(state / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(state / "workspaces"), PYTHONUNBUFFERED="1")
    # no "Jupyter news?" pop-up over the app in screenshots
    settings = state / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    log = open(state.with_suffix(".log"), "w")
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")  # CI containers run as root
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with code {proc.returncode}; see {state}.log")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab did not answer on {base} within {timeout:.0f} s")
            time.sleep(0.5)
        yield base, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@contextlib.contextmanager
def chromium_page(*, width: int = 1400, height: int = 1000):
    """A Playwright page in Debian's headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            browser.close()


def open_notebook(page, base: str, token: str, name: str, *, timeout_ms: int = 90_000) -> None:
    """Open ``name`` (relative to the server root) and wait until its kernel is idle."""
    page.goto(f"{base}/lab/tree/{name}?token={token}", timeout=timeout_ms)
    page.wait_for_function("window.jupyterapp && window.jupyterapp.shell.currentWidget"
                           " && window.jupyterapp.shell.currentWidget.sessionContext"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session"
                           " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel",
                           timeout=timeout_ms)
    wait_kernel_idle(page, timeout_ms=timeout_ms)


def wait_kernel_idle(page, *, timeout_ms: int = 300_000) -> None:
    page.wait_for_function("window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"
                           " === 'idle'", timeout=timeout_ms, polling=250)


def run_all_cells(page, *, timeout_ms: int = 600_000) -> None:
    """Run every cell of the current notebook and wait until none is queued or running."""
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # cells show "[*]" while queued or running
    page.wait_for_timeout(500)
    page.wait_for_function(
        "() => { const p = document.querySelectorAll('.jp-InputPrompt');"
        " return p.length > 0 && ![...p].some(e => e.textContent.includes('*')); }",
        timeout=timeout_ms, polling=500)
    wait_kernel_idle(page, timeout_ms=timeout_ms)


def cell_errors(page) -> list[str]:
    """Text of the error outputs shown in the notebook (empty when every cell succeeded)."""
    return page.eval_on_selector_all(
        ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
        "els => els.map(e => e.textContent)") + page.eval_on_selector_all(
        ".jp-RenderedText[data-mime-type='application/vnd.jupyter.error']",
        "els => els.map(e => e.textContent)")


# ---------------------------------------------------------------------------- the test
import shutil  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "test-results"


def _need_browser() -> None:
    """Skip without Chromium/Playwright on a laptop; in CI (CI=true) a missing browser fails."""
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append(CHROMIUM)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package")
    if missing:
        msg = f"browser test needs {' and '.join(missing)} (apt-get install chromium; pip install playwright)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(msg)
        pytest.skip(msg)


def _build_number(page) -> int:
    return int(page.get_attribute(".wb-results table.wb-metrics", "data-build"))


@pytest.mark.browser
@pytest.mark.slow
def test_quickstart_in_jupyterlab(tmp_path):
    """Open the quickstart in JupyterLab, run it, calibrate, switch a layer to FP16, rebuild."""
    _need_browser()
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / "01_quickstart.ipynb", root)
    RESULTS.mkdir(exist_ok=True)
    with jupyter_lab(root) as (base, token), chromium_page() as page:
        try:
            open_notebook(page, base, token, "01_quickstart.ipynb")
            run_all_cells(page)
            assert not cell_errors(page), cell_errors(page)
            # the app rendered, with its histogram plot
            page.locator(".wb-app").wait_for(timeout=60_000)
            page.locator("button.wb-run-calibration").click()
            page.wait_for_function(
                "document.querySelector('.wb-calibration-info').textContent.includes('Statistics')",
                timeout=120_000)
            page.wait_for_function(
                "document.querySelectorAll('.wb-histogram .barlayer .point').length > 10",
                timeout=60_000)
            before = _build_number(page)
            # switch the third layer of the table to FP16
            table = page.locator(".wb-layer-table select")
            node = table.locator("option").nth(2).get_attribute("value")
            label = table.locator("option").nth(2).text_content()
            table.select_option(index=2)
            page.wait_for_function(
                "t => document.querySelector('.wb-histogram-caption').textContent.includes(t)",
                arg=label.split()[0], timeout=30_000)
            page.locator("button.wb-set-fp16").click()
            page.wait_for_function(
                "() => [...document.querySelectorAll('.wb-layer-table option')]"
                ".some(o => /\\sFP16\\s/.test(o.textContent))", timeout=30_000)
            page.locator("button.wb-rebuild").click()
            page.wait_for_function(
                f"() => {{ const t = document.querySelector('.wb-results table.wb-metrics');"
                f" return t && Number(t.dataset.build) === {before + 1}; }}", timeout=120_000)
            text = page.locator(".wb-results").text_content()
            assert f"build {before + 1} (new)" in text
            # the new build has one more FP16 node than the one before
            row = page.locator(".wb-results tr", has_text="INT8 / FP16 nodes").locator("td").all_text_contents()
            (old_int8, old_fp16), (new_int8, new_fp16) = [tuple(int(x) for x in cell.split("/")) for cell in row[1:3]]
            assert new_fp16 == old_fp16 + 1 and new_int8 == old_int8 - 1, (node, row)
            assert "top-1 agreement" in text
            assert page.locator(".wb-error").text_content().strip() == ""
        finally:
            page.screenshot(path=str(RESULTS / "browser_quickstart.png"), full_page=True)

