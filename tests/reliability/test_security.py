"""No spreadsheet formula in a CSV we write (CSV injection, issue 22).

Tensor and node names come from the user's model; a name beginning with ``=``, ``+``, ``-``,
``@`` (or a tab / carriage return) would be evaluated by Excel, LibreOffice or Google Sheets.
Every CSV the workbench writes escapes such cells with a leading ``'``
(:mod:`workbench.outputs.csvsafe`); numbers stay numbers.
"""
import csv
from pathlib import Path

import onnx
import pandas as pd

import tiny_models
from reliability_helpers import err_of, leftovers, ws  # noqa: F401
from workbench.cli import main
from workbench.outputs.csvsafe import FORMULA_START, dataframe_csv, escape_cell

#: tensor / node renames: every formula start, one of them a real formula
EVIL = {"r1": "=HYPERLINK(\"http://x\",\"y\")", "sum": "+1+1", "pool": "-2+3", "r2": "@SUM(A1)"}
EVIL_NODES = {"conv2": "=cmd|' /C calc'!A0", "fc": "@fc", "conv1": "\tconv1", "gap": "\rgap"}


def evil_model(path: Path) -> Path:
    m = tiny_models.small_cnn(size=16)
    for node in m.graph.node:
        node.input[:] = [EVIL.get(i, i) for i in node.input]
        node.output[:] = [EVIL.get(o, o) for o in node.output]
        node.name = EVIL_NODES.get(node.name, node.name)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))
    return path


def formula_cells(path: Path) -> list:
    """Cells of ``path`` a spreadsheet would evaluate (text starting with a formula character)."""
    bad = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.reader(fh):
            for cell in row:
                if cell.startswith(FORMULA_START):
                    try:
                        float(cell)  # a negative number is a number
                    except ValueError:
                        bad.append(cell)
    return bad


def test_escape_cell_and_dataframe_csv():
    assert [escape_cell(c) for c in ("=1+2", "+x", "-y", "@z", "\tt", "\rr", "ok", -3.5, None)] == \
        ["'=1+2", "'+x", "'-y", "'@z", "'\tt", "'\rr", "ok", -3.5, None]
    text = dataframe_csv(pd.DataFrame({"=name": ["=A1", "b"], "value": [-1.5, 2.0]}))
    rows = list(csv.reader(text.splitlines()))
    assert rows == [["'=name", "value"], ["'=A1", "-1.5"], ["b", "2.0"]]


def test_ranges_explain_and_sensitivity_csv_are_escaped(ws, capsys):
    model = evil_model(ws.root / "evil.onnx")
    ws.snap()
    assert main(["calibrate", str(model), "--data", str(ws.data), "--method", "minmax", "--explain", "-q",
                 "-o", str(ws.root / "cal")]) == 0
    assert main(["sensitivity", str(model), "--data", str(ws.data), "--method", "minmax", "-q",
                 "-o", str(ws.root / "sens.csv")]) == 0
    err_of(capsys)
    written = [ws.root / "cal" / "ranges.csv", ws.root / "cal" / "ranges_explain.csv", ws.root / "sens.csv"]
    for path in written:
        text = path.read_text()
        assert formula_cells(path) == [], path.name
        assert any(f"'{name}" in text for name in list(EVIL.values()) + list(EVIL_NODES.values())), path.name
    ranges = pd.read_csv(written[0])
    assert "'=HYPERLINK(\"http://x\",\"y\")" in set(ranges.iloc[:, 0])  # the name is kept, readable
    assert leftovers(ws.root) == []


def test_autoprec_curve_and_api_table_are_escaped(ws, capsys):
    from workbench import ModelInfo, collect_statistics, compute_ranges, open_data

    model = evil_model(ws.root / "evil.onnx")
    info = ModelInfo.from_path(model)
    ranges = compute_ranges(collect_statistics(info, open_data(ws.data, info), progress=False), "minmax")
    ranges.write_csv(ws.root / "api.csv")
    assert formula_cells(ws.root / "api.csv") == []
    code = main(["autoprec", str(model), "--data", str(ws.data), "--method", "minmax", "-q", "--target",
                 "cosine>=0.5", "-o", str(ws.root / "a.onnx")])
    assert code in (0, 1)
    err_of(capsys)
    assert formula_cells(ws.root / "a.curve.csv") == []
