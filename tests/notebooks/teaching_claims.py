"""The claim convention of the teaching notebooks (04 onwards) and its checker.

The convention (also stated at the top of each teaching notebook):

1. A number in a lesson's text that comes from a computation is written in **bold**:
   ``**0.37**``, ``**1.54x**``, ``**0.0050%**``, ``**-0.61**``, ``**6.1e-04**``, ``**18.2 dB**``.
   The bold text starts with the number; a unit or a word may follow it inside the bold.
2. The code cells between the previous markdown cell and this one ("the cell above") must print
   that number: some printed number, written at least as precisely as the claim, rounds to the
   claim as written (same decimals; for ``6.1e-04`` the same significant digits). A printed
   ``4`` does not support a claim ``4.00``. Printed means a stream or ``text/plain`` output.
3. Every other number in the prose is a whole number that defines something (8 bits, 127,
   2048, 65504). A decimal number outside bold is an error, so a computed value cannot slip
   into the text unchecked. Code spans (`` `...` ``) and LaTeX (``$...$``) are not read.
4. Claims without a number ("coarser", "about a third", "the minimum is at the same
   candidate") are ``assert`` statements at the end of the code cell above, which the notebook
   run executes.

:func:`check_cells` returns the problems of an executed notebook (empty when every claim holds);
:func:`mutate_claims` changes a stated number, to show that the checker notices. A claim changed
into another number that the cell above also prints cannot be noticed by any checker of this
kind; keep the printed output of a lesson short so that this stays unlikely.
"""
from __future__ import annotations

import functools
import math
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

_NUM = r"[-+−]?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+−]?\d+)?"
# a bold claim: ** number [anything but *] **
_BOLD = re.compile(r"\*\*\s*(" + _NUM + r")([^*]*)\*\*")
_ANY_BOLD = re.compile(r"\*\*[^*]*\*\*")
_CODE = re.compile(r"```.*?```|`[^`]*`", re.S)
_LATEX = re.compile(r"\$\$.*?\$\$|\$[^$]*\$", re.S)
_LINK = re.compile(r"\]\([^)]*\)")
# a number in printed output; a minus counts only when it does not follow a letter/digit ("a-1")
_PRINTED = re.compile(r"(?<![\w.])(-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?)")
_PLAIN_DECIMAL = re.compile(r"(?<![\w.])\d+\.\d+")


@dataclass(frozen=True)
class Claim:
    """A bold number of a markdown cell: its text as written, value and rounding step."""

    cell: int
    text: str
    value: float
    tolerance: float

    def holds_for(self, printed: float, printed_tolerance: float) -> bool:
        """True when a number printed as ``printed`` (half a unit of its last digit:
        ``printed_tolerance``) is at least as precise as the claim and rounds to it."""
        slack = 1 + 1e-9
        return (printed_tolerance <= self.tolerance * slack
                and abs(printed - self.value) <= self.tolerance * slack)


def _parse(text: str) -> tuple[float, float]:
    """(value, half of the last written digit's unit) of a number as written."""
    t = text.replace("−", "-").replace(",", "")
    mantissa, _, exponent = t.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    scale = 10.0 ** int(exponent) if exponent else 1.0
    return float(t), 0.5 * 10.0 ** -decimals * scale


def claims_in(markdown: str, cell: int = -1) -> list[Claim]:
    """The bold numbers of one markdown cell (code spans and LaTeX are skipped)."""
    text = _LATEX.sub(" ", _CODE.sub(" ", markdown))
    out = []
    for m in _BOLD.finditer(text):
        value, tol = _parse(m.group(1))
        out.append(Claim(cell, m.group(1), value, tol))
    return out


def plain_decimals(markdown: str) -> list[str]:
    """Decimal numbers written outside bold, code spans, LaTeX and link targets (rule 3)."""
    text = _LINK.sub("]", _LATEX.sub(" ", _CODE.sub(" ", markdown)))
    text = _ANY_BOLD.sub(" ", text)
    return _PLAIN_DECIMAL.findall(text)


def output_text(cell) -> str:
    """What a code cell printed: streams and text/plain results (widgets' reprs included)."""
    parts = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            parts.append(o.get("text", ""))
        else:
            data = o.get("data", {})
            parts.append(str(data.get("text/plain", "")))
    return "\n".join(parts)


def printed_numbers(text: str) -> list[tuple[float, float]]:
    """(value, half a unit of the last printed digit) of every number in ``text``."""
    out = []
    for m in _PRINTED.finditer(text):
        try:
            value, tol = _parse(m.group(1))
        except ValueError:
            continue
        if math.isfinite(value):
            out.append((value, tol))
    return out


def check_cells(cells) -> list[str]:
    """Every problem with the claims of an executed notebook's cells (empty list: all hold)."""
    problems = []
    above: list[tuple[float, float]] = []
    code_above = 0
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            above.extend(printed_numbers(output_text(cell)))
            code_above += 1
            continue
        if cell["cell_type"] != "markdown":
            continue
        source = cell["source"]
        for d in plain_decimals(source):
            problems.append(f"cell {i}: decimal number {d} is not a bold claim (write it **{d}** and print it above)")
        for c in claims_in(source, i):
            if not code_above:
                problems.append(f"cell {i}: claim **{c.text}** has no code cell above it")
            elif not any(c.holds_for(v, tol) for v, tol in above):
                problems.append(f"cell {i}: claim **{c.text}** is not printed by the code cell above "
                                f"(rounded as written)")
        above, code_above = [], 0
    return problems


def claim_count(cells) -> int:
    return sum(len(claims_in(c["source"])) for c in cells if c["cell_type"] == "markdown")


def _bump(text: str, step: int = 3) -> str:
    """``text`` with its last written digit raised by ``step`` (carrying), e.g. 0.37 -> 0.40."""
    m = re.match(r"^(.*?)(\d[\d,]*(?:\.\d+)?)((?:[eE].*)?)$", text)
    head, digits, tail = m.groups()
    plain = digits.replace(",", "")
    decimals = len(plain.split(".")[1]) if "." in plain else 0
    units = int(plain.replace(".", "")) + step
    s = str(units).rjust(decimals + 1, "0")
    new = f"{s[:-decimals]}.{s[-decimals:]}" if decimals else s
    return head + new + tail


def mutate_claims(source: str, which: int = 0, printed=()) -> str:
    """``source`` with the ``which``-th bold number changed: its last digit raised by 3, or by
    more when the changed number happens to be printed too (``printed``: the (value, tolerance)
    pairs of the cell above), so the change is one the convention can see."""
    matches = list(_BOLD.finditer(source))
    m = matches[which]
    for step in range(3, 1000):
        new = _bump(m.group(1), step)
        value, tol = _parse(new)
        claim = Claim(-1, new, value, tol)
        if not any(claim.holds_for(v, t) for v, t in printed):
            break
    return source[: m.start(1)] + new + source[m.end(1):]


def printed_above(cells, index: int) -> list[tuple[float, float]]:
    """The numbers printed by the code cells between the markdown cell before ``index`` and it."""
    out: list = []
    for cell in cells[:index]:
        if cell["cell_type"] == "markdown":
            out = []
        elif cell["cell_type"] == "code":
            out.extend(printed_numbers(output_text(cell)))
    return out


# ------------------------------------------------------------------ executing notebooks
@functools.lru_cache(maxsize=None)
def executed(name: str):
    """The notebook ``notebooks/<name>`` executed once per test process (nbclient, in a
    temporary folder, so the projects it writes go there); returns the notebook node."""
    import nbclient
    import nbformat

    folder = Path(tempfile.mkdtemp(prefix="wb-nb-"))
    shutil.copy(NOTEBOOKS / name, folder)
    nb = nbformat.read(folder / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(folder)}})
    client.execute()  # raises CellExecutionError naming the failing cell
    return nb
