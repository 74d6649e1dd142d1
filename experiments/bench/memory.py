"""Peak RSS and its growth while training, each engine in a fresh process of its own."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

from experiments.bench.timing import run_steps
from experiments.bench.workloads import WORKLOADS, Workload

REPO_ROOT = Path(__file__).resolve().parents[2]


def measure_rss(workload: Workload, name: str, batch_size: int, steps: int) -> dict[str, Any]:
    """Peak RSS of a fresh process that builds one engine and trains it for ``steps`` steps."""
    command = [sys.executable, "-m", "experiments.bench", "--rss-worker", name, "--workload", workload.name]
    command += ["--batch-sizes", str(batch_size), "--rss-steps", str(steps)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def rss_worker(workload_name: str, name: str, batch_size: int, steps: int) -> dict[str, Any]:
    """What ``measure_rss`` runs in the fresh process (``--rss-worker``)."""
    workload = WORKLOADS[workload_name]
    engine = workload.build_engine(name)
    batches = workload.prepared_batches(engine, batch_size)
    checkpoint = max(1, steps // 10)
    run_steps(engine, batches, checkpoint)
    rss_early = _status_kb("VmRSS")
    run_steps(engine, batches, steps - checkpoint)
    rss_end = _status_kb("VmRSS")
    peak_kb = _status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "steps": steps,
        "peak_rss_mb": peak_kb / 1024,
        "rss_growth_mb": None if rss_early is None else (rss_end - rss_early) / 1024,
    }


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None
