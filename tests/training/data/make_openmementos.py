"""Write the OpenMementos-schema test files from the authors' three real traces (examples/traces).

    PYTHONPATH=src python tests/training/data/make_openmementos.py

`domain` and `source` follow each trace's origin; `difficulty` is a label we assign for the
filter tests (the authors' traces carry none).
"""

from __future__ import annotations

import json
from pathlib import Path

from memento.format import load_traces
from memento.training.openmementos import row_from_trace

ROOT = Path(__file__).resolve().parents[3]
LABELS = {  # file: (domain, source, difficulty)
    "memento_trace_response.json": ("math", "AIME 2025 Problem 5", 8),
    "memento_trace_code.json": ("code", "LiveCodeBench v6", 6),
    "memento_trace_science.json": ("science", "GPQA Diamond", 7),
}


def main() -> None:
    for config in ("default", "full"):
        lines = []
        for file, (domain, source, difficulty) in LABELS.items():
            ((_, trace),) = load_traces(ROOT / "examples" / "traces" / file)
            row = row_from_trace(trace, config=config, domain=domain, source=source, difficulty=difficulty)
            lines.append(json.dumps(row, ensure_ascii=False))
        (Path(__file__).parent / f"openmementos_{config}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
