"""Checks of the app in a real browser that only a browser can make (used by test_browser.py):
the layer table with every column at 1400 x 900, the scroll position after a sort, the slider
and the amax box after "Use calibrated"."""
from __future__ import annotations

TABLE_JS = """() => {
  const w = document.querySelector('.wb-layer-table .wb-table-scroll');
  return {scroll: w.scrollWidth, client: w.clientWidth, top: w.scrollTop, height: w.clientHeight,
          columns: [...document.querySelectorAll('.wb-layer-table th')].map(th => th.dataset.key)};
}"""

#: more columns: range sensitivity, the accuracy steps' weight SQNR and bias shift
MORE_COLUMNS = "s.explain_ranges(samples=4)\ns.improve()\n"


def run_in_kernel(page, code: str, *, timeout_ms: int = 300_000) -> str:
    """Execute ``code`` in the notebook's kernel (as a hidden cell would), wait for it and
    return what it printed."""
    page.evaluate("code => { window._wbDone = false; window._wbOut = ''; const k = window.jupyterapp.shell"
                  ".currentWidget.sessionContext.session.kernel; const f = k.requestExecute({code});"
                  " f.onIOPub = (m) => { if (m.header.msg_type === 'stream') window._wbOut += m.content.text; };"
                  " f.done.then(() => { window._wbDone = true; }); }", code)
    page.wait_for_function("window._wbDone === true", timeout=timeout_ms, polling=500)
    return page.evaluate("window._wbOut")


def check_layer_table(page) -> None:
    """Every column shown without a horizontal cut; a sort starts at the top of the rows."""
    run_in_kernel(page, MORE_COLUMNS)
    page.wait_for_function("document.querySelectorAll('.wb-layer-table th').length >= 9", timeout=60_000)
    page.locator(".wb-layer-table").scroll_into_view_if_needed()
    page.wait_for_timeout(800)
    t = page.evaluate(TABLE_JS)
    assert t["scroll"] <= t["client"] + 1, t  # nothing cut at 1400 px with the file browser open
    assert {"range_sensitivity", "weight_sqnr_rounded"} <= set(t["columns"]), t["columns"]
    # select the row that a descending amax sort puts last, scroll down, sort: the rows start at the top
    key = page.evaluate("""() => { let best = null, low = Infinity;
      for (const tr of document.querySelectorAll('.wb-layer-table tr.prec-int8')) {
        const v = parseFloat(tr.querySelector("td[data-col='amax']").textContent);
        if (v < low) { low = v; best = tr.dataset.key; } }
      return best; }""")
    page.locator(f".wb-layer-table tr[data-key='{key}']").click()
    page.wait_for_function("k => { const r = document.querySelector('.wb-layer-table tr.wb-selected');"
                           " return r && r.dataset.key === k; }", arg=key, timeout=30_000)
    page.evaluate("document.querySelector('.wb-layer-table .wb-table-scroll').scrollTop = 200")
    page.locator(".wb-layer-table th[data-key='amax']").click()
    page.wait_for_function("document.querySelector(\".wb-layer-table th[data-key='amax']\").textContent"
                           ".includes('▼')", timeout=30_000)
    page.wait_for_timeout(1500)  # the sorted rows arrive from Python
    t = page.evaluate(TABLE_JS)
    below = page.evaluate("k => document.querySelector(`.wb-layer-table tr[data-key='${k}']`).offsetTop", key)
    assert t["top"] == 0 and below > t["height"], (t, below)  # the old code scrolled to the selection


def check_use_calibrated(page) -> None:
    """After trying another value, "Use calibrated" puts the box and the slider's thumb back
    where the app says the calibrated threshold is (``wb`` is the quickstart's app)."""
    page.locator(".wb-histogram").scroll_into_view_if_needed()
    slider = page.locator(".wb-threshold-slider input")
    box = page.locator(".wb-threshold input")
    h = "wb.panels['histogram']"
    amax, share = (float(v) for v in run_in_kernel(page, f"print({h}.data['chosen'], {h}.data['chosen'] / {h}._top)")
                   .split())
    before = float(slider.input_value())
    track = slider.bounding_box()
    y = track["y"] + track["height"] / 2
    page.mouse.move(track["x"] + before * track["width"], y)
    page.mouse.down()
    for f in (0.8, 0.85, 0.9):
        page.mouse.move(track["x"] + f * track["width"], y)
        page.wait_for_timeout(100)
    page.mouse.up()
    page.wait_for_function("a => Math.abs(Number(document.querySelector('.wb-threshold input').value) - a)"
                           " > 1e-3 * a", arg=amax, timeout=30_000)
    page.locator("button.wb-clear-threshold").click()
    page.wait_for_function("a => Math.abs(Number(document.querySelector('.wb-threshold input').value) - a)"
                           " <= 1e-4 * a", arg=amax, timeout=30_000)
    page.wait_for_timeout(500)
    assert abs(float(slider.input_value()) - share) <= 1e-3, (slider.input_value(), share)
