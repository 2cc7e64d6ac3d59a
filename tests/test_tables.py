"""`memento.tables.print_table`: no figure is ever cut, in a narrow terminal or piped."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

from rich.console import Console
from rich.table import Table

from memento.tables import column_groups, print_table
from tests.conftest import REAL_TRACES


def _wide_table() -> tuple[Table, list[str]]:
    table = Table(title="a wide table")
    values = ["memento_trace_response.json", "5,545", "5,545 -> 2,484", "0.76 -> 0.34", "2.23x", "2.27 -> 0.77"]
    values += [f"{n},{n}{n}{n} -> {n},{n}{n}{n}" for n in range(1, 9)]
    for index in range(len(values)):
        table.add_column(f"column number {index}", justify="left" if index == 0 else "right", no_wrap=True)
    table.add_row(*values)
    table.add_section()
    table.add_row(*(f"x{v}" for v in values))
    return table, values


def test_a_narrow_terminal_gets_every_value_whole_in_several_tables() -> None:
    table, values = _wide_table()
    buffer = io.StringIO()
    print_table(table, Console(file=buffer, width=120, force_terminal=True, color_system=None))
    text = buffer.getvalue()
    assert "…" not in text
    assert all(len(line) <= 120 for line in text.splitlines())
    assert "(1/" in text and "(2/" in text  # split, each part titled
    for value in values:
        assert value in text and f"x{value}" in text
    parts = text.count("a wide table (")
    assert parts >= 2 and text.count("│ memento_trace_response.json") == parts  # the row label in every part


def test_piped_output_is_one_table_at_its_natural_width() -> None:
    table, values = _wide_table()
    buffer = io.StringIO()
    print_table(table, Console(file=buffer, width=80))  # a file, not a terminal
    rows = [line for line in buffer.getvalue().splitlines() if "│ memento_trace_response.json" in line]
    assert len(rows) == 1 and all(value in rows[0] for value in values)
    assert "(1/" not in buffer.getvalue()


def test_column_groups_keep_the_key_columns_and_never_drop_a_column() -> None:
    widths = [20, 50, 50, 50, 200, 5]
    groups = column_groups(widths, 120, key_columns=1)
    assert all(group[0] == 0 for group in groups)
    assert sorted(i for group in groups for i in group[1:]) == [1, 2, 3, 4, 5]
    assert [4] in [group[1:] for group in groups]  # too wide for any terminal: alone with the key column


def test_a_column_wider_than_the_terminal_beside_the_row_labels_is_still_whole() -> None:
    table = Table(title="narrow")
    table.add_column("name")
    table.add_column("value", justify="right")
    figure = "1,234,567,890 -> " * 3 + "42"
    table.add_row("a row label of some length", figure)
    buffer = io.StringIO()
    print_table(table, Console(file=buffer, width=60, force_terminal=True, color_system=None))
    text = buffer.getvalue()
    assert "…" not in text and figure in text and "value" in text  # its lines run on; the terminal wraps them


def test_memento_kv_piped_prints_every_figure_of_its_json() -> None:
    env = {**os.environ, "COLUMNS": "120"}
    command = [sys.executable, "-m", "memento.cli", "kv", *map(str, REAL_TRACES)]
    text = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, check=True).stdout
    report = json.loads(
        subprocess.run(
            [*command, "--json"], capture_output=True, text=True, env=env, timeout=120, check=True
        ).stdout.splitlines()[-1]
    )
    assert "…" not in text
    for trace in report["traces"]:
        row = next(line for line in text.splitlines() if f"│ {trace['name']}" in line)
        vanilla, memento = trace["vanilla"]["peak_tokens"], trace["memento"]["peak_tokens"]
        assert f"{vanilla:,} -> {memento:,}" in row
        assert f"{trace['peak_ratio']:.2f}x" in row and f"{trace['auc_ratio']:.2f}x" in row
