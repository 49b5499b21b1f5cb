"""`print_table`: print a list of dicts (e.g. `search_secdef_info_by_conid(...).data`) as aligned columns.

The peer library ships it as a helper of its examples (`ibind.support.py_utils.print_table`); scripts that import it
run here with the import changed to `from ibkr_sdk import print_table`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def print_table(my_dict: Sequence[Mapping[str, Any]], column_order: Sequence[str] | None = None) -> None:
    """Print the rows under a header of column names, each column right-aligned to its widest cell.

    Args:
        my_dict: The rows, one mapping each (the parameter keeps the peer's name, so keyword calls still work).
        column_order: The columns to print, in this order; by default the keys of the first row.
    """
    if isinstance(my_dict, Mapping) or isinstance(my_dict, (str, bytes)):
        raise ValueError(f"print_table(): parameter 'my_dict' must be a list of dicts, got {type(my_dict).__name__}")
    columns = list(column_order) if column_order is not None else list(my_dict[0]) if my_dict else []
    lines = [columns] + [[_cell(row.get(column)) for column in columns] for row in my_dict]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    for line in lines:
        print("   ".join(text.rjust(width) for text, width in zip(line, widths, strict=True)))
