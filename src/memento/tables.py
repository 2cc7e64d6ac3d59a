"""Printing a rich `Table` so that no figure is ever cut: the one owner of how memento prints tables.

Rich shrinks a table wider than the console by cutting cells (``2,738 -> 1,3…``). `print_table` never
lets it: every column keeps its natural width (its widest cell or header), and a table wider than the
terminal is printed as several tables side by side in sequence, each repeating the key columns (the
row labels), the way pandas wraps wide frames. Output that is not a terminal (a pipe, a file) gets one
table at its natural width, every value on one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Column, Table

_EDGE = 4  # a rich table's outer border and the padding of its first and last cell
_SEPARATOR = 3  # a column separator and its two padding cells


def natural_width(column: Column, console: Console) -> int:
    """The characters a column needs to show its header and every cell uncut."""
    cells = [column.header, *column.cells]
    return max((console.measure(cell).maximum for cell in cells), default=0)


def table_width(widths: list[int]) -> int:
    """The characters a table of columns `widths` (each its natural width) takes, borders and padding included."""
    return _EDGE + sum(widths) + _SEPARATOR * max(len(widths) - 1, 0)


def column_groups(widths: list[int], width: int, key_columns: int = 1) -> list[list[int]]:
    """Column indices per printed table: the key columns, then as many others as fit in `width` characters.

    A column too wide to fit beside the key columns even alone gets a table of its own with them.
    """
    keys = list(range(min(key_columns, len(widths))))
    base = table_width([widths[i] for i in keys])
    groups: list[list[int]] = []
    current: list[int] = []
    used = base
    for index in range(len(keys), len(widths)):
        needed = widths[index] + _SEPARATOR
        if current and used + needed > width:
            groups.append(keys + current)
            current, used = [], base
        current.append(index)
        used += needed
    if current or not groups:
        groups.append(keys + current)
    return groups


def print_table(table: Table, console: Console | None = None, *, key_columns: int = 1) -> None:
    """Print `table` on `console` (stdout by default) without cutting any cell; see the module docstring."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    widths = [natural_width(column, console) for column in table.columns]
    full = table_width(widths)
    if not console.is_terminal:
        width = max(full, len(str(table.title or "")))
        console = Console(file=console.file, width=width, color_system=None, force_terminal=False)
    groups = column_groups(widths, console.width, key_columns)
    for number, indices in enumerate(groups, 1):
        needed = table_width([widths[i] for i in indices])
        target = console  # a part too wide for the terminal even alone: its lines run on (the terminal wraps them)
        if needed > console.width:
            target = Console(file=console.file, width=needed, color_system=console.color_system, force_terminal=True)
        title = table.title
        if len(groups) > 1 and title is not None:
            title = f"{title} ({number}/{len(groups)})"
        part = Table(title=title, caption=table.caption, show_lines=table.show_lines, box=table.box)
        for index in indices:
            column = table.columns[index]
            part.add_column(column.header, justify=column.justify, style=column.style, no_wrap=True)
            part.columns[-1].min_width = widths[index]
        cells = [list(table.columns[index].cells) for index in indices]
        for row_number, row in enumerate(table.rows):
            part.add_row(*(column_cells[row_number] for column_cells in cells), end_section=row.end_section)
        target.print(part)
