"""The report: one JSON-ready document per run, and its Markdown tables."""

from __future__ import annotations

import datetime
import sys
from typing import Any

# 2: the engines, verification and results of each model under ``workloads`` (mlp, wavenet);
# 1 held the MLP's at the top level
SCHEMA_VERSION = 2


def build_report(
    *, machine: dict[str, Any], config: dict[str, Any], workloads: dict[str, Any]
) -> dict[str, Any]:
    """The document ``--json`` writes, stamped with the schema, the time and the command."""
    return {
        "schema": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m experiments.bench " + " ".join(sys.argv[1:]),
        "machine": machine,
        "config": config,
        "workloads": workloads,
    }


def format_table(report: dict[str, Any]) -> str:
    """Markdown, per workload: one row per engine and batch size, then the ratios as in issue 5's
    table."""
    clock = report["config"]["clock"]
    parts = []
    for name, part in report["workloads"].items():
        parts.append(
            f"{name}: {part['title']}\n\n"
            + _results_table(part, clock)
            + "\n\n"
            + _ratios_table(part)
            + _unavailable_lines(part)
        )
    return "\n\n".join(parts)


def _results_table(part: dict[str, Any], clock: str) -> str:
    lines = [
        f"| engine | batch | steps/s median (min–max), {clock} clock | µs/step "
        "| ratio to torch median (min–max) "
        "| peak RSS MB | RSS growth MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in part["results"]:
        rate, ratio, memory = row["steps_per_second"], row["ratio_to_torch"], row.get("memory") or {}
        lines.append(
            f"| {row['engine']} | {row['batch_size']} "
            f"| {rate['median']:.0f} ({rate['min']:.0f}–{rate['max']:.0f}) | {row['us_per_step']:.0f} "
            f"| {_ratio_text(ratio, with_range=True)} | {_number(memory.get('peak_rss_mb'))} "
            f"| {_number(memory.get('rss_growth_mb'), 1)} |"
        )
    return "\n".join(lines)


def _ratios_table(part: dict[str, Any]) -> str:
    results, batch_sizes = part["results"], part["batch_sizes"]
    lines = ["| engine | baseline | " + " | ".join(f"batch {b}" for b in batch_sizes) + " |"]
    lines.append("|---|---|" + "---:|" * len(batch_sizes))
    by_key = {(r["engine"], r["batch_size"]): r for r in results}
    for name in dict.fromkeys(r["engine"] for r in results):
        cells = []
        for b in batch_sizes:
            row = by_key.get((name, b))
            cells.append(f"{_ratio_text(row['ratio_to_torch'])} ({row['us_per_step']:.0f} µs)" if row else "")
        baseline = part["engines"][name]["baseline"] or "itself"
        lines.append(f"| {name} | {baseline} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _unavailable_lines(part: dict[str, Any]) -> str:
    return "".join(f"\n\n{name}: not measured, {reason}" for name, reason in part["unavailable"].items())


def _ratio_text(ratio: dict[str, float] | None, with_range: bool = False) -> str:
    if ratio is None:
        return "n/a"
    if with_range:
        return f"{ratio['median']:.2f} ({ratio['min']:.2f}–{ratio['max']:.2f})"
    return f"{ratio['median']:.2f}"


def _number(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
