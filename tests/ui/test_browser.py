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
def chromium_page(*, width: int = 1400, height: int = 900):
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

import browser_checks  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
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


# JavaScript run in the page: what a user would see, read from the DOM and plotly's own state.
TRUNCATED_JS = """() => {
  const app = document.querySelector('.wb-app');
  const cut = [];
  const ctx = document.createElement('canvas').getContext('2d');
  const sel = 'button, .widget-label, .lm-TabBar-tabLabel, .widget-readout, label, th, td, .widget-html-content, select';
  for (const el of app.querySelectorAll(sel + ', input[placeholder]')) {
    if (el.offsetParent === null) continue;
    if (el.tagName === 'INPUT') {
      if (!el.placeholder || el.value) continue;
      const cs = getComputedStyle(el); ctx.font = cs.font;
      const need = ctx.measureText(el.placeholder).width + parseFloat(cs.paddingLeft) + parseFloat(cs.paddingRight);
      if (need > el.clientWidth + 1) cut.push('placeholder: ' + el.placeholder);
    } else if (el.scrollWidth > el.clientWidth + 1) {
      cut.push(el.tagName + ': ' + el.textContent.trim().slice(0, 50)
               + ' (' + el.scrollWidth + ' > ' + el.clientWidth + ')');
    }
  }
  for (const el of app.querySelectorAll('.wb-table-scroll')) {
    if (el.offsetParent !== null && el.scrollWidth > el.clientWidth + 1) cut.push('table cut horizontally');
  }
  return cut;
}"""

UNLABELLED_JS = """() => {
  const bad = [];
  for (const el of document.querySelector('.wb-app').querySelectorAll('button, input, select')) {
    if (el.offsetParent === null || el.closest('.wb-plot-div') || el.closest('.modebar')) continue;
    const box = el.closest('.widget-inline-hbox, .jupyter-widgets, .wb-drag-slider') || el.parentElement;
    const label = box && box.querySelector('.widget-label, label');
    const ok = el.textContent.trim() || el.title || el.getAttribute('aria-label') || el.placeholder
               || (label && label.textContent.trim() && label.style.display !== 'none') || el.closest('[title]');
    if (!ok) bad.push(el.tagName + ' ' + (el.className || '') + ' in ' + (box ? box.className : '?'));
  }
  return bad;
}"""

PLOT_JS = """(cls) => {
  const gd = document.querySelector('.' + cls + ' .wb-plot-div');
  if (!gd || !gd._fullLayout) return null;
  const xa = gd._fullLayout.xaxis;
  return {range: xa.range, traces: gd.data.map((t) => ({meta: t.meta, name: t.name, x: t.x, n: (t.x || []).length,
                                                      customdata: t.customdata}))};
}"""

POINT_JS = """([cls, meta, index]) => {
  const gd = document.querySelector('.' + cls + ' .wb-plot-div');
  const t = gd._fullData.findIndex((d) => d.meta === meta);
  const tr = gd._fullData[t], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
  const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
  return {x: box.left + xa.l2p(tr.x[index]), y: box.top + ya.l2p(tr.y[index]),
          rendered: gd.querySelectorAll('.cartesianlayer .scatterlayer .trace')[t].querySelectorAll('.point').length};
}"""

LINE_METAS = ("chosen", "manual", "entropy", "entropy_zero_fix", "minmax", "percentile", "mse")


def _shot(page, locator, name: str) -> None:
    locator.scroll_into_view_if_needed()
    page.wait_for_timeout(400)
    locator.screenshot(path=str(RESULTS / name))


def _stale_state(page) -> str:
    return page.get_attribute(".wb-stale-badge", "data-state")


@pytest.mark.browser
@pytest.mark.slow
def test_quickstart_in_jupyterlab(tmp_path, sample_model_path):
    """The quickstart at 1400x900: layout, histogram truth, stale marks, graph view, live threshold."""
    import onnx

    _need_browser()
    n_nodes = len(onnx.load(str(sample_model_path)).graph.node)
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(REPO / "notebooks" / "01_quickstart.ipynb", root)
    RESULTS.mkdir(exist_ok=True)
    with jupyter_lab(root) as (base, token), chromium_page(width=1400, height=900) as page:
        try:
            open_notebook(page, base, token, "01_quickstart.ipynb")
            run_all_cells(page)
            assert not cell_errors(page), cell_errors(page)
            app = page.locator(".wb-app")
            app.wait_for(timeout=60_000)
            page.wait_for_function("document.querySelectorAll('.wb-histogram .barlayer .point').length > 10",
                                   timeout=60_000)
            app.scroll_into_view_if_needed()
            # the app uses the output area's width, and its main loop fits the window
            width = page.evaluate("() => [document.querySelector('.wb-app').getBoundingClientRect().width,"
                                  " document.querySelector('.wb-app').closest('.jp-OutputArea-output')"
                                  ".getBoundingClientRect().width]")
            assert width[0] >= 0.97 * width[1], width
            page.locator(".wb-main").scroll_into_view_if_needed()
            page.screenshot(path=str(RESULTS / "browser_app_1400x900.png"))
            assert page.evaluate(TRUNCATED_JS) == []
            assert page.evaluate(UNLABELLED_JS) == []  # every control has a label or a tooltip

            # every threshold line and the data's max inside the histogram's x-range
            hist = page.evaluate(PLOT_JS, "wb-histogram")
            lo, hi = hist["range"]
            lines = [t for t in hist["traces"] if t["meta"] and
                     any(m in (t["meta"] if isinstance(t["meta"], list) else [t["meta"]]) for m in LINE_METAS)]
            assert len(lines) >= 3, hist["traces"]
            for t in lines:
                assert lo <= t["x"][0] <= hi, (t["name"], t["x"], hist["range"])
            caption = page.locator(".wb-histogram-caption").text_content()
            data_max = float(caption.split("max |x| ")[1].split(",")[0])
            assert data_max <= hi
            _shot(page, page.locator(".wb-main"), "panel_layers_histogram.png")

            # live threshold: nothing is tried until the user does; typing a value shows its effect
            assert "drag" in page.locator(".wb-preview").text_content()
            box = page.locator(".wb-threshold input")
            box.fill(f"{0.5 * data_max:.4g}")
            box.press("Enter")
            page.wait_for_function("/^try [0-9]/.test(document.querySelector('.wb-preview').textContent.trim())",
                                   timeout=60_000)
            assert "clipped" in page.locator(".wb-preview").text_content()
            # dragging the slider does the same while the hand moves
            typed = float(box.input_value())
            track = page.locator(".wb-threshold-slider input").bounding_box()
            y = track["y"] + track["height"] / 2
            page.mouse.move(track["x"] + 0.5 * track["width"], y)
            page.mouse.down()
            for f in (0.45, 0.4, 0.35, 0.3):
                page.mouse.move(track["x"] + f * track["width"], y)
                page.wait_for_timeout(100)
            page.mouse.up()
            page.wait_for_function(
                "typed => { const m = document.querySelector('.wb-preview').textContent.match(/try ([0-9.]+)/);"
                " const v = Number(document.querySelector('.wb-threshold input').value);"
                " return m && v !== typed && Math.abs(Number(m[1]) - v) <= 1e-3 * v; }", arg=typed, timeout=30_000)
            tried = float(box.input_value())
            assert tried < 0.45 * hi, (tried, hi)

            # results marked stale after a precision change, fresh after Rebuild
            assert _stale_state(page) == "fresh"
            before = int(page.get_attribute(".wb-results table.wb-metrics", "data-build"))
            rows = page.locator(".wb-layer-table tr.prec-int8")
            node = rows.nth(2).get_attribute("data-key")
            rows.nth(2).click()
            page.wait_for_function("t => document.querySelector('.wb-histogram-caption').textContent.includes(t)",
                                   arg=node, timeout=30_000)
            page.locator("button.wb-set-fp16").click()
            page.wait_for_function("document.querySelector('.wb-stale-badge').dataset.state === 'stale'",
                                   timeout=30_000)
            assert node in page.locator(".wb-stale-badge").get_attribute("title")
            assert page.locator(f".wb-layer-table tr[data-key='{node}'] td[data-col='precision']").text_content() == "FP16"
            _shot(page, page.locator(".wb-main"), "panel_stale.png")
            page.locator("button.wb-rebuild").click()
            page.wait_for_function(
                f"() => {{ const t = document.querySelector('.wb-results table.wb-metrics');"
                f" return t && Number(t.dataset.build) === {before + 1}; }}", timeout=180_000)
            page.wait_for_function("document.querySelector('.wb-stale-badge').dataset.state === 'fresh'",
                                   timeout=30_000)
            row = page.locator(".wb-results tr", has_text="INT8 / FP16 nodes").locator("td").all_text_contents()
            (old_int8, old_fp16), (new_int8, new_fp16) = [tuple(int(x) for x in c.split("/")) for c in row[1:3]]
            assert new_fp16 == old_fp16 + 1 and new_int8 == old_int8 - 1, (node, row)
            tabs = page.locator(".wb-tabs .lm-TabBar-tab")
            _shot(page, page.locator(".wb-tabs"), "tab_results.png")
            tabs.nth(1).click()
            page.wait_for_timeout(800)
            _shot(page, page.locator(".wb-tabs"), "tab_history.png")

            # the graph view: one marker per model node, and a click selects that node in the table
            tabs.nth(2).click()
            page.wait_for_function("() => { const g = document.querySelector('.wb-graph .wb-plot-div');"
                                   " return g && g._fullLayout && g.getBoundingClientRect().width > 400; }",
                                   timeout=60_000)
            graph = page.evaluate(PLOT_JS, "wb-graph")
            (nodes,) = [t for t in graph["traces"] if t["meta"] == "nodes"]
            assert nodes["n"] == n_nodes
            table_nodes = page.eval_on_selector_all(".wb-layer-table tr.prec-int8", "rs => rs.map(r => r.dataset.key)")
            selected = page.get_attribute(".wb-layer-table tr.wb-selected", "data-key")
            glo, ghi = graph["range"]
            pick = next(i for i, (x, n) in enumerate(zip(nodes["x"], nodes["customdata"]))
                        if n in table_nodes and n != selected and glo + 1 < x < ghi - 1)
            target = nodes["customdata"][pick]
            page.wait_for_timeout(1000)  # let the plot settle to its width before aiming
            point = page.evaluate(POINT_JS, ["wb-graph", "nodes", pick])
            assert point["rendered"] == n_nodes
            page.mouse.move(point["x"], point["y"])
            page.wait_for_function("t => { const h = document.querySelector('.wb-graph .hovertext');"
                                   " return h && h.textContent.includes(t); }", arg=target, timeout=10_000)
            page.mouse.click(point["x"], point["y"])
            page.wait_for_function("n => { const r = document.querySelector('.wb-layer-table tr.wb-selected');"
                                   " return r && r.dataset.key === n; }", arg=target, timeout=30_000)
            page.wait_for_function("t => document.querySelector('.wb-histogram-caption').textContent.includes(t)",
                                   arg=target, timeout=30_000)
            _shot(page, page.locator(".wb-tabs"), "tab_graph.png")
            for i, name in ((3, "tab_sensitivity.png"), (4, "tab_export.png")):
                tabs.nth(i).click()
                page.wait_for_timeout(800)
                _shot(page, page.locator(".wb-tabs"), name)
            assert page.evaluate(TRUNCATED_JS) == []

            # input preparation: the sample's normalisation, one prepared photo, errors beside the panel
            page.locator(".wb-setup [class*='Collapse-header']").first.click()
            stats = page.locator(".wb-prep-stats")
            stats.wait_for(timeout=30_000)
            text = stats.text_content()
            lo, hi = (float(text.split(k)[1].split()[0]) for k in ("min ", "max "))
            assert "1x3x224x224" in text and -1.0 <= lo < hi <= 1.0, text  # (pixel - 127) / 128
            assert page.evaluate("() => document.querySelector('img.wb-prep-image').naturalWidth") == 224
            assert "efficientnet-lite" in page.locator(".wb-prep-sources").text_content()
            height = page.locator(".wb-prep-height input")
            for value, expect in (("250", "(N, 3, 250, 224)"), ("0", "")):
                height.fill(value)
                height.press("Tab")
                page.locator("button.wb-prep-apply").click()
                page.wait_for_function("t => { const e = document.querySelector('.wb-prep-error').textContent;"
                                       " return t ? e.includes(t) : e.trim() === ''; }", arg=expect, timeout=30_000)
            _shot(page, page.locator(".wb-prep"), "panel_preparation.png")
            assert page.evaluate(TRUNCATED_JS) == []  # the panel's fields too, now that it is open
            assert page.locator(".wb-error").text_content().strip() == ""

            # issue 20: "Use calibrated" puts slider and box back; every column fits; a sort starts at the top
            browser_checks.check_use_calibrated(page)
            browser_checks.check_layer_table(page)
            assert page.evaluate(TRUNCATED_JS) == [] and not cell_errors(page)
        finally:
            page.screenshot(path=str(RESULTS / "browser_quickstart.png"))
