"""CSV text that a spreadsheet shows as text: no cell is evaluated as a formula.

Tensor and node names come from the user's model and may begin with ``=``, ``+``, ``-`` or ``@``
(or a tab / carriage return), which Excel, LibreOffice and Google Sheets evaluate as a formula
(CSV injection). Every CSV the workbench writes goes through :func:`dataframe_csv`, which
prefixes such text cells (and headers) with a single quote, as OWASP recommends. Numeric
columns are left as they are, so a negative number stays a number.
"""
from __future__ import annotations

#: First characters a spreadsheet reads as the start of a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value):
    """``value`` with a leading ``'`` when it is text a spreadsheet would evaluate; else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def dataframe_csv(df) -> str:
    """``df.to_csv(index=False)`` with every text cell and header escaped (see :func:`escape_cell`)."""
    from pandas.api.types import is_numeric_dtype

    out = df.copy()
    for col in out.columns:
        if not is_numeric_dtype(out[col]):  # text, object, category columns (pandas 2 and 3)
            out[col] = out[col].astype(object).map(escape_cell)
    out.columns = [escape_cell(c) for c in out.columns]
    return out.to_csv(index=False)


__all__ = ["FORMULA_START", "dataframe_csv", "escape_cell"]
