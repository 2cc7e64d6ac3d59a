"""The shapes of a run directory's JSON files, checked wherever they are read back (`memento.json_shapes`).

What `memento eval` / `eval grade` write: manifest.json (`check_manifest_file`), one sample record per line
of samples.jsonl (`check_sample`), summary.json (`check_summary`: the figures the summary table and plots
read) and one line per command in invocations.jsonl (`check_invocation`). A file a person or another tool
changed into JSON of another shape is one line naming the file, the field and what was expected.
"""

from __future__ import annotations

from typing import Any

from memento.json_shapes import check_fields, check_items

MANIFEST = {
    "model": "string|null",
    "tokenizer": "string|null",
    "benchmark": "string|null",
    "benchmark_source": "string|null",
    "backend": "string|null",
    "graded_from": "string|null",
    "choice_seed": "integer",
    "seed": "integer|null",
    "modes": "object",
}
MODE_SETTINGS = {"config": "object|null", "model": "string|null"}
SAMPLE = {
    "mode": "string",
    "id": "string|integer",
    "sample": "integer",
    "response": "string",
    "correct": "boolean",
    "answer": "string|null",
    "status": "string|null",
    "finish_reason": "string|null",
    "tokens": "integer|null",
    "prompt_tokens": "integer|null",
    "kv_peak_tokens": "number|null",
    "kv_peak_bytes": "number|null",
    "kv_auc_gb_ktok": "number|null",
    "blocks": "integer|null",
    "mementos": "integer|null",
    "well_formed": "boolean|null",
    "kv_from": "string|null",
}
SUMMARY = {
    "benchmark": "string",
    "model": "string|null",
    "backend": "string|null",
    "responses": "string|null",
    "samples_per_problem": "integer|null",
    "reference_mode": "string|null",
    "modes": "object",
    "mode_settings": "object",
}
MODE_FIGURES = {
    "problems": "integer",
    "samples": "integer",
    "pass_at_1": "number",
    "pass_at_1_stderr": "number",
    "pass_at_k": "object",
    "maj_at_k": "object",
    "format_ok": "number",
    "tokens_mean": "number",
    "blocks_mean": "number",
    "kv_peak_tokens_mean": "number",
    "kv_peak_tokens_max": "number",
    "kv_peak_bytes_mean": "number|null",
    "kv_auc_gb_ktok_mean": "number|null",
    "kv_peak_ratio": "number",
    "pass_at_1_gap_pp": "number",
    "tokens_per_second": "number|null",
    "billed_tokens_mean": "number|null",
    "fallbacks_mean": "number|null",
}
REQUIRED_FIGURES = (
    *("samples", "pass_at_1", "pass_at_1_stderr", "pass_at_k", "maj_at_k", "format_ok", "tokens_mean"),
    *("blocks_mean", "kv_peak_tokens_mean", "kv_peak_tokens_max", "kv_peak_bytes_mean", "kv_auc_gb_ktok_mean"),
)
SUMMARIZED = (
    *("correct", "answer", "status", "well_formed", "tokens", "blocks", "mementos"),
    *("kv_peak_tokens", "kv_peak_bytes", "kv_auc_gb_ktok"),
)
"""The fields of a sample that `report.summary.summarize` reads."""
INVOCATION = {"time": "string", "command": "list", "versions": "object"}


def _mode_map(value: dict[str, Any], field: str, shape: dict[str, str], where: str, required: tuple = ()) -> None:
    for name, settings in value.get(field, {}).items():
        check_fields(settings, shape, where, field=f"{field}.{name}", required=required)


def check_manifest_file(manifest: Any, where: str) -> dict[str, Any]:
    """manifest.json: what was run (`runner.run_manifest`, `eval grade`'s manifest)."""
    check_fields(manifest, MANIFEST, where)
    _mode_map(manifest, "modes", MODE_SETTINGS, where)
    return manifest


def check_sample(record: Any, where: str) -> dict[str, Any]:
    """One line of samples.jsonl (`records.build_records`); `where` is ``FILE:LINE``."""
    return check_fields(record, SAMPLE, where, required=("mode", "id", "sample"))


def check_summarizable(record: dict[str, Any], where: str) -> dict[str, Any]:
    """A sample record with every field a summary is made of (`SUMMARIZED`)."""
    return check_fields(record, SAMPLE, where, required=SUMMARIZED)


def check_summary(summary: Any, where: str) -> dict[str, Any]:
    """summary.json (`report.summary.summarize`): each mode's figures that the table and plots read."""
    check_fields(summary, SUMMARY, where, required=("benchmark", "modes"))
    _mode_map(summary, "modes", MODE_FIGURES, where, required=REQUIRED_FIGURES)
    for name, figures in summary["modes"].items():
        for table in ("pass_at_k", "maj_at_k"):
            check_items(figures[table], "number", where, f"modes.{name}.{table}")
    _mode_map(summary, "mode_settings", MODE_SETTINGS, where)
    return summary


def check_invocation(line: Any, where: str) -> dict[str, Any]:
    """One line of invocations.jsonl (`store.record_invocation`); `where` is ``FILE:LINE``."""
    check_fields(line, INVOCATION, where)
    check_items(line.get("command", []), "string", where, "command")
    check_items(line.get("versions", {}), "string", where, "versions")
    return line
