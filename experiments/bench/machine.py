"""What the numbers were measured on: CPU, versions, BLAS and its threads."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np

from experiments.bench import THREAD_VARIABLES, THREADS_PINNED_BEFORE_IMPORT
from experiments.bench.engines import EngineUnavailableError, load_torch


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu": _cpu_model(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": None,
        "blas": _numpy_blas(),
        "blas_runtime": _threadpool_info(),
        "thread_variables": {v: os.environ.get(v) for v in THREAD_VARIABLES},
        "threads_pinned_before_import": THREADS_PINNED_BEFORE_IMPORT,
        "openblas_variables": {  # e.g. OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE: left as they are
            k: v for k, v in os.environ.items() if k.startswith("OPENBLAS_") and k not in THREAD_VARIABLES
        },
    }
    with contextlib.suppress(EngineUnavailableError):
        info["torch"] = load_torch().__version__
    return info


def format_machine(machine: dict[str, Any]) -> str:
    """``machine_info`` in the few lines the run prints first."""
    openblas = ", ".join(f"{k}={v}" for k, v in machine["openblas_variables"].items()) or "none set"
    lines = [
        f"machine: {machine['cpu']}, {machine['nproc']} CPUs; python {machine['python']}, "
        f"numpy {machine['numpy']}, torch {machine['torch'] or 'not installed'}",
        f"BLAS: {machine['blas']}; runtime: {machine['blas_runtime']}",
        f"OPENBLAS_* variables: {openblas}; threads: {machine['thread_variables']}",
    ]
    if not machine["threads_pinned_before_import"]:
        lines.append("WARNING: numpy/torch were imported before the thread variables were set")
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _numpy_blas() -> str:
    try:
        blas = np.__config__.CONFIG["Build Dependencies"]["blas"]
        return f"{blas['name']} {blas['version']} ({blas.get('openblas configuration', '')})".strip()
    except (AttributeError, KeyError, TypeError):
        return "unknown"


def _threadpool_info() -> Any:
    try:
        import threadpoolctl
    except ImportError:
        return "threadpoolctl not installed"
    return [
        {k: pool.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
        for pool in threadpoolctl.threadpool_info()
    ]
