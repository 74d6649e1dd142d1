"""Benchmark: one training step of the makemore MLP on tape, torch eager and hand-fused NumPy.

    python -m experiments.bench                 # the full run (a few minutes)
    python -m experiments.bench --quick         # under a minute
    python -m experiments.bench --profile tape-decomposed --batch-sizes 32

A step is forward, backward and an SGD update of the backprop-ninja notebook's MLP (vocab 27,
n_embd 10, block 3, n_hidden 200), on random batches drawn from a fixed pseudo-dataset. The
engines:

- ``tape-nn``: the model built from ``nn`` (Embedding, Flatten, Linear, BatchNorm1d, Tanh,
  Linear) with the fused ``nn.cross_entropy`` and batchnorm; compared with ``torch-nn``.
- ``tape-decomposed``: the notebook's exercise-1 graph (about 20 forward ops), the very
  ``forward(lib, ...)`` the tests run; compared with ``torch-decomposed``, the same function on torch.
- ``torch-nn`` / ``torch-decomposed``: torch eager autograd, the baselines (optional).
- ``numpy-floor``: forward and backward written by hand in NumPy, the nn model's floor.

All run in one process on one thread, in interleaved rounds; each engine's steps/s is divided
by its torch baseline's steps/s of the same round. Peak RSS comes from a separate process per
engine. Before timing, every engine must reach the same losses from the same numbers.
"""

# ruff: noqa: E402  (the thread variables must be set before numpy is imported)
from __future__ import annotations

import os
import sys

# One thread, pinned before NumPy or torch load their thread pools (importing this module
# after them cannot change their pools any more; main() reports that case).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
THREADS_PINNED_BEFORE_IMPORT = "numpy" not in sys.modules and "torch" not in sys.modules
for _variable in THREAD_VARIABLES:
    os.environ[_variable] = "1"

import argparse
import contextlib
import cProfile
import dataclasses
import datetime
import importlib
import importlib.util
import io
import json
import platform
import pstats
import resource
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

import tape
from experiments import notebook
from tape.atomic import write_text

REPO_ROOT = Path(__file__).resolve().parents[1]

VOCAB_SIZE, N_EMBD, BLOCK_SIZE, N_HIDDEN = 27, 10, 3, 200
LEARNING_RATE = 0.1
BN_EPS, BN_MOMENTUM = 1e-5, 0.1
DATASET_SIZE = 20_000  # the pseudo-dataset: random contexts and targets, no data file needed
BATCH_POOL = 32  # distinct batches per batch size, drawn once and cycled through
VERIFY_STEPS = 3  # losses compared at each of these steps (so the gradients are checked too)
LOSS_TOLERANCE = 1e-4  # |loss - reference| <= tol * (1 + |reference|), float32
SCHEMA_VERSION = 1


class EngineUnavailableError(Exception):
    """An engine cannot run here (torch not installed, nn not written yet, ...)."""


class Engine(Protocol):
    def prepare(self, Xb: np.ndarray, Yb: np.ndarray) -> Any:
        """The batch in the engine's own types (converted once, outside the timing)."""

    def step(self, batch: Any) -> Any:
        """One training step (forward, backward, SGD); returns the loss before the update."""


# ---------------------------------------------------------------- optional imports


def load_torch() -> ModuleType:
    try:
        import torch
    except ImportError as e:
        raise EngineUnavailableError(f"torch not importable ({e})") from None
    torch.set_num_threads(1)
    return torch


def load_nn() -> ModuleType:
    try:
        nn = importlib.import_module("nn")
    except ImportError as e:
        raise EngineUnavailableError(f"nn not available ({e})") from None
    needed = ("Sequential", "Embedding", "Flatten", "Linear", "BatchNorm1d", "Tanh", "SGD", "cross_entropy")
    missing = [name for name in needed if not hasattr(nn, name)]
    if missing:
        raise EngineUnavailableError(f"nn not available (nn has no {', '.join(missing)} yet)")
    return nn


# ---------------------------------------------------------------- the model's numbers


def initial_parameters(seed: int = 42) -> dict[str, np.ndarray]:
    """The notebook's parameters (C, W1, b1, W2, b2, bngain, bnbias) in float32."""
    params = notebook.parameters(seed, VOCAB_SIZE, N_EMBD, BLOCK_SIZE, N_HIDDEN)
    return {name: value.astype(np.float32) for name, value in params.items()}


def sequential_parameters(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The notebook's parameters under the names of the nn.Sequential model (tape layout)."""
    return {
        "0.weight": params["C"],
        "2.weight": params["W1"],
        "2.bias": params["b1"],
        "3.weight": params["bngain"].reshape(-1),
        "3.bias": params["bnbias"].reshape(-1),
        "5.weight": params["W2"],
        "5.bias": params["b2"],
    }


def pseudo_dataset(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, VOCAB_SIZE, (DATASET_SIZE, BLOCK_SIZE)),
        rng.integers(0, VOCAB_SIZE, DATASET_SIZE),
    )


def sample_batches(batch_size: int, count: int = BATCH_POOL, seed: int = 2) -> list[tuple[np.ndarray, ...]]:
    X, Y = pseudo_dataset()
    rng = np.random.default_rng([seed, batch_size])
    batches = []
    for _ in range(count):
        rows = rng.integers(0, DATASET_SIZE, batch_size)
        batches.append((X[rows], Y[rows]))
    return batches


def _copy_into_tape_parameters(named: Sequence[tuple[str, Any]], values: dict[str, np.ndarray]) -> None:
    named = dict(named)
    if named.keys() != values.keys():
        raise RuntimeError(f"bench: model parameters {sorted(named)} are not the expected {sorted(values)}")
    for name, value in values.items():
        if named[name].shape != value.shape:
            raise RuntimeError(f"bench: {name} has shape {named[name].shape}, expected {value.shape}")
        named[name].array = value.copy()


# ---------------------------------------------------------------- engines


class TapeNN:
    """The nn package's model, with the fused cross-entropy and batchnorm."""

    def __init__(self, params: dict[str, np.ndarray], lr: float) -> None:
        nn = load_nn()
        self.cross_entropy = nn.cross_entropy
        self.model = nn.Sequential(
            nn.Embedding(VOCAB_SIZE, N_EMBD),
            nn.Flatten(),
            nn.Linear(N_EMBD * BLOCK_SIZE, N_HIDDEN),
            nn.BatchNorm1d(N_HIDDEN, eps=BN_EPS, momentum=BN_MOMENTUM, unbiased=False),
            nn.Tanh(),
            nn.Linear(N_HIDDEN, VOCAB_SIZE),
        )
        _copy_into_tape_parameters(self.model.named_parameters(), sequential_parameters(params))
        self.optimizer = nn.SGD(self.model.parameters(), lr)

    def prepare(self, Xb: np.ndarray, Yb: np.ndarray) -> Any:
        return Xb, Yb

    def step(self, batch: Any) -> Any:
        Xb, Yb = batch
        loss = self.cross_entropy(self.model(Xb), Yb)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.array


class TapeDecomposed:
    """The notebook's exercise-1 graph, op by op, on tape."""

    def __init__(self, params: dict[str, np.ndarray], lr: float) -> None:
        self.forward = notebook.forward
        self.lr = lr
        self.params = {k: tape.tensor(v, requires_grad=True) for k, v in params.items()}

    def prepare(self, Xb: np.ndarray, Yb: np.ndarray) -> Any:
        return tape.tensor(Xb), tape.tensor(Yb), len(Yb)

    def step(self, batch: Any) -> Any:
        Xb, Yb, n = batch
        loss = self.forward(tape, **self.params, Xb=Xb, Yb=Yb, n=n)["loss"]
        for p in self.params.values():
            p.grad = None
        loss.backward()
        for p in self.params.values():
            p.array -= self.lr * p.grad.array
        return loss.array


class TorchNN:
    """torch.nn modules, F.cross_entropy and torch.optim.SGD: idiomatic torch eager."""

    def __init__(self, params: dict[str, np.ndarray], lr: float) -> None:
        torch = self.torch = load_torch()
        nn = torch.nn
        self.model = nn.Sequential(
            nn.Embedding(VOCAB_SIZE, N_EMBD),
            nn.Flatten(),
            nn.Linear(N_EMBD * BLOCK_SIZE, N_HIDDEN),
            nn.BatchNorm1d(N_HIDDEN, eps=BN_EPS, momentum=BN_MOMENTUM),
            nn.Tanh(),
            nn.Linear(N_HIDDEN, VOCAB_SIZE),
        )
        values = sequential_parameters(params)
        transposed = {"2.weight", "5.weight"}  # torch's Linear stores (fan_out, fan_in)
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                value = values[name].T if name in transposed else values[name]
                p.copy_(torch.from_numpy(np.ascontiguousarray(value)))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)

    def prepare(self, Xb: np.ndarray, Yb: np.ndarray) -> Any:
        return self.torch.from_numpy(Xb), self.torch.from_numpy(Yb)

    def step(self, batch: Any) -> Any:
        Xb, Yb = batch
        loss = self.torch.nn.functional.cross_entropy(self.model(Xb), Yb)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.detach()


class TorchDecomposed:
    """The notebook's exercise-1 graph on torch eager: the same ``forward`` as tape runs."""

    def __init__(self, params: dict[str, np.ndarray], lr: float) -> None:
        self.torch = load_torch()
        self.forward = notebook.forward
        self.lr = lr
        self.params = {k: self.torch.tensor(v, requires_grad=True) for k, v in params.items()}

    def prepare(self, Xb: np.ndarray, Yb: np.ndarray) -> Any:
        return self.torch.from_numpy(Xb), self.torch.from_numpy(Yb), len(Yb)

    def step(self, batch: Any) -> Any:
        Xb, Yb, n = batch
        loss = self.forward(self.torch, **self.params, Xb=Xb, Yb=Yb, n=n)["loss"]
        for p in self.params.values():
            p.grad = None
        loss.backward()
        with self.torch.no_grad():
            for p in self.params.values():
                p -= self.lr * p.grad
        return loss.detach()


class NumpyFloor:
    """Forward and backward of the whole step derived by hand: what a perfect engine would do.

    ``unbiased`` picks the batchnorm variance the normalisation uses: False as torch.nn and
    the nn model (timed), True as the notebook (used to check the decomposed graph).
    """

    def __init__(self, params: dict[str, np.ndarray], lr: float, unbiased: bool = False) -> None:
        self.p = {k: v.copy() for k, v in params.items()}
        self.p["bngain"] = self.p["bngain"].reshape(-1)
        self.p["bnbias"] = self.p["bnbias"].reshape(-1)
        self.running_mean = np.zeros(N_HIDDEN, np.float32)
        self.running_var = np.ones(N_HIDDEN, np.float32)
        self.lr = lr
        self.unbiased = unbiased

    def prepare(self, Xb: np.ndarray, Yb: np.ndarray) -> Any:
        return Xb, Yb

    def step(self, batch: Any) -> Any:
        Xb, Yb = batch
        p, n = self.p, len(Yb)
        rows = np.arange(n)
        # forward
        embcat = p["C"][Xb].reshape(n, -1)
        hprebn = embcat @ p["W1"] + p["b1"]
        mean = hprebn.mean(0)
        diff = hprebn - mean
        sum_sq = np.einsum("ij,ij->j", diff, diff)
        var_inv = (sum_sq / (n - 1 if self.unbiased else n) + BN_EPS) ** -0.5
        bnraw = diff * var_inv
        h = np.tanh(p["bngain"] * bnraw + p["bnbias"])
        logits = h @ p["W2"] + p["b2"]
        logits_max = logits.max(1, keepdims=True)
        counts = np.exp(logits - logits_max)
        counts_sum = counts.sum(1, keepdims=True)
        loss = (np.log(counts_sum[:, 0]) + logits_max[:, 0] - logits[rows, Yb]).mean()
        # backward
        dlogits = counts / counts_sum
        dlogits[rows, Yb] -= 1.0
        dlogits /= n
        grads = {"W2": h.T @ dlogits, "b2": dlogits.sum(0)}
        dhpreact = (dlogits @ p["W2"].T) * (1.0 - h * h)
        grads["bngain"] = np.einsum("ij,ij->j", bnraw, dhpreact)
        grads["bnbias"] = dhpreact.sum(0)
        correction = n / (n - 1) if self.unbiased else 1.0
        dhprebn = (p["bngain"] * var_inv / n) * (
            n * dhpreact - grads["bnbias"] - (correction * grads["bngain"]) * bnraw
        )
        grads["W1"] = embcat.T @ dhprebn
        grads["b1"] = dhprebn.sum(0)
        demb = dhprebn @ p["W1"].T  # (n, block * n_embd)
        # scatter-add into the embedding table: one bincount over flat (row, column) keys
        keys = (Xb[:, :, None] * N_EMBD + np.arange(N_EMBD)).ravel()
        grads["C"] = np.bincount(keys, demb.ravel(), VOCAB_SIZE * N_EMBD).reshape(VOCAB_SIZE, N_EMBD)
        for name, g in grads.items():
            p[name] -= self.lr * g.astype(np.float32, copy=False)
        # running statistics, as torch.nn.BatchNorm1d keeps them (unbiased running variance)
        self.running_mean += BN_MOMENTUM * (mean - self.running_mean)
        self.running_var += BN_MOMENTUM * (sum_sq / (n - 1) - self.running_var)
        return loss


@dataclasses.dataclass(frozen=True)
class EngineSpec:
    name: str
    build: Callable[[dict[str, np.ndarray], float], Engine]
    baseline: str | None  # the torch engine its ratio is taken against
    description: str


ENGINES = [
    EngineSpec("tape-nn", TapeNN, "torch-nn", "tape, nn model (fused cross-entropy and batchnorm)"),
    EngineSpec("tape-decomposed", TapeDecomposed, "torch-decomposed", "tape, notebook graph op by op"),
    EngineSpec("torch-nn", TorchNN, None, "torch eager, torch.nn modules + F.cross_entropy"),
    EngineSpec("torch-decomposed", TorchDecomposed, None, "torch eager, notebook graph op by op"),
    EngineSpec("numpy-floor", NumpyFloor, "torch-nn", "NumPy, forward and backward fused by hand"),
]
ENGINE_BY_NAME = {spec.name: spec for spec in ENGINES}
# what each engine's losses must match: the floor with the same batchnorm variance convention
REFERENCE_UNBIASED = {"tape-nn": False, "torch-nn": False, "numpy-floor": False}


def build_engines(names: Sequence[str], params: dict[str, np.ndarray]) -> tuple[dict[str, Engine], dict]:
    """The engines that can run here, and why the others cannot."""
    engines, unavailable = {}, {}
    for name in names:
        try:
            engines[name] = ENGINE_BY_NAME[name].build(params, LEARNING_RATE)
        except EngineUnavailableError as e:
            unavailable[name] = str(e)
    return engines, unavailable


# ---------------------------------------------------------------- verification


def verify_losses(names: Sequence[str], batch_size: int) -> dict[str, Any]:
    """Every engine's losses over the first steps against the NumPy floor's; exits if one differs."""
    params = initial_parameters()
    engines, _ = build_engines(names, params)
    batches = sample_batches(batch_size, VERIFY_STEPS)
    references = {
        unbiased: [float(s) for s in _run(NumpyFloor(params, LEARNING_RATE, unbiased), batches)]
        for unbiased in (False, True)
    }
    losses, worst = {}, 0.0
    failures = []
    for name, engine in engines.items():
        losses[name] = [float(np.asarray(loss)) for loss in _run(engine, batches)]
        reference = references[REFERENCE_UNBIASED.get(name, True)]
        for step, (ours, theirs) in enumerate(zip(losses[name], reference)):
            error = abs(ours - theirs) / (1 + abs(theirs))
            worst = max(worst, error)
            if not error <= LOSS_TOLERANCE:
                failures.append(f"  {name} step {step}: loss {ours:.7f}, reference {theirs:.7f}")
    if failures:
        raise SystemExit(
            f"bench: the engines disagree at batch size {batch_size} (relative tolerance "
            f"{LOSS_TOLERANCE:g}), so their timings would not be comparable:\n" + "\n".join(failures)
        )
    return {
        "batch_size": batch_size,
        "steps": VERIFY_STEPS,
        "losses": losses,
        "reference_biased_variance": references[False],
        "reference_unbiased_variance": references[True],
        "max_relative_error": worst,
        "tolerance": LOSS_TOLERANCE,
    }


def _run(engine: Engine, batches: Sequence[tuple[np.ndarray, ...]]) -> list[Any]:
    return [engine.step(engine.prepare(*b)) for b in batches]


# ---------------------------------------------------------------- timing


# wall: what a user waits for. cpu: this process's CPU time (one thread, so the same on an
# idle machine), which leaves out the time other processes hold the CPU on a shared machine.
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def run_steps(engine: Engine, batches: Sequence[Any], steps: int, clock: str = "wall") -> float:
    """Seconds taken by ``steps`` training steps."""
    now = CLOCKS[clock]
    count = len(batches)
    start = now()
    for i in range(steps):
        engine.step(batches[i % count])
    return now() - start


def calibrate(engine: Engine, batches: Sequence[Any], seconds: float) -> int:
    """Steps that take about ``seconds`` (this also warms the engine up)."""
    steps = 1
    while True:
        elapsed = run_steps(engine, batches, steps)
        if elapsed >= seconds / 4 or steps >= 1_000_000:
            return max(1, round(steps * seconds / elapsed))
        steps *= 2


def _summary(values: Sequence[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def time_batch_size(
    engines: dict[str, Engine], batch_size: int, rounds: int, seconds: float, clock: str = "wall"
) -> dict[str, dict[str, Any]]:
    """Interleaved rounds: each round times every engine once, in a rotating order."""
    batches = sample_batches(batch_size)
    prepared = {name: [e.prepare(*b) for b in batches] for name, e in engines.items()}
    steps = {name: calibrate(e, prepared[name], seconds) for name, e in engines.items()}
    names = list(engines)
    rates: dict[str, list[float]] = {name: [] for name in names}
    ratios: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        this_round = {}
        for name in names[r % len(names) :] + names[: r % len(names)]:
            elapsed = run_steps(engines[name], prepared[name], steps[name], clock)
            this_round[name] = steps[name] / elapsed
        for name, rate in this_round.items():
            rates[name].append(rate)
            baseline = ENGINE_BY_NAME[name].baseline or name
            if baseline in this_round:
                ratios[name].append(rate / this_round[baseline])
    return {
        name: {
            "steps_per_measurement": steps[name],
            "steps_per_second": _summary(rates[name]),
            "us_per_step": 1e6 / statistics.median(rates[name]),
            "ratio_to_torch": _summary(ratios[name]) if ratios[name] else None,
            "rounds": rates[name],
        }
        for name in names
    }


# ---------------------------------------------------------------- memory, in a separate process


def measure_rss(name: str, batch_size: int, steps: int) -> dict[str, Any]:
    """Peak RSS of a fresh process that builds one engine and trains it for ``steps`` steps."""
    command = [sys.executable, "-m", "experiments.bench", "--rss-worker", name]
    command += ["--batch-sizes", str(batch_size), "--rss-steps", str(steps)]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_worker(name: str, batch_size: int, steps: int) -> dict[str, Any]:
    engine = ENGINE_BY_NAME[name].build(initial_parameters(), LEARNING_RATE)
    batches = [engine.prepare(*b) for b in sample_batches(batch_size)]
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


# ---------------------------------------------------------------- the machine


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


# ---------------------------------------------------------------- profile


def profile(name: str, batch_size: int, steps: int, top: int = 25) -> str:
    """cProfile of ``steps`` training steps: the functions taking the most time, in µs per step."""
    engine = ENGINE_BY_NAME[name].build(initial_parameters(), LEARNING_RATE)
    batches = [engine.prepare(*b) for b in sample_batches(batch_size)]
    run_steps(engine, batches, max(10, steps // 10))
    profiler = cProfile.Profile()
    profiler.enable()
    run_steps(engine, batches, steps)
    profiler.disable()
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    for (filename, line, function), (_, calls, tottime, cumtime, _) in stats.stats.items():
        where = f"{Path(filename).name}:{line}({function})" if line else function
        rows.append((tottime, cumtime, calls, where))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    lines = [
        f"cProfile, {name}, batch {batch_size}: {1e6 * total / steps:.0f} µs per step under the profiler",
        f"{'self µs/step':>12} {'cum µs/step':>12} {'calls/step':>10}  function",
    ]
    for tottime, cumtime, calls, where in rows[:top]:
        lines.append(
            f"{1e6 * tottime / steps:12.1f} {1e6 * cumtime / steps:12.1f} {calls / steps:10.1f}  {where}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- report


def format_table(report: dict[str, Any]) -> str:
    """Markdown: one row per engine and batch size, then the ratios as in issue 5's table."""
    results = report["results"]
    lines = [
        f"| engine | batch | steps/s median (min–max), {report['config']['clock']} clock | µs/step "
        "| ratio to torch median (min–max) "
        "| peak RSS MB | RSS growth MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results:
        rate, ratio, memory = row["steps_per_second"], row["ratio_to_torch"], row.get("memory") or {}
        lines.append(
            f"| {row['engine']} | {row['batch_size']} "
            f"| {rate['median']:.0f} ({rate['min']:.0f}–{rate['max']:.0f}) | {row['us_per_step']:.0f} "
            f"| {_ratio_text(ratio, with_range=True)} | {_number(memory.get('peak_rss_mb'))} "
            f"| {_number(memory.get('rss_growth_mb'), 1)} |"
        )
    batch_sizes = report["config"]["batch_sizes"]
    lines += ["", "| engine | baseline | " + " | ".join(f"batch {b}" for b in batch_sizes) + " |"]
    lines.append("|---|---|" + "---:|" * len(batch_sizes))
    by_key = {(r["engine"], r["batch_size"]): r for r in results}
    for name in dict.fromkeys(r["engine"] for r in results):
        cells = []
        for b in batch_sizes:
            row = by_key.get((name, b))
            cells.append(f"{_ratio_text(row['ratio_to_torch'])} ({row['us_per_step']:.0f} µs)" if row else "")
        baseline = ENGINE_BY_NAME[name].baseline or "itself"
        lines.append(f"| {name} | {baseline} | " + " | ".join(cells) + " |")
    for name, reason in report["unavailable"].items():
        lines.append(f"\n{name}: not measured, {reason}")
    return "\n".join(lines)


def _ratio_text(ratio: dict[str, float] | None, with_range: bool = False) -> str:
    if ratio is None:
        return "n/a"
    if with_range:
        return f"{ratio['median']:.2f} ({ratio['min']:.2f}–{ratio['max']:.2f})"
    return f"{ratio['median']:.2f}"


def _number(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_machine(machine: dict[str, Any]) -> str:
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


# ---------------------------------------------------------------- main


@dataclasses.dataclass
class Settings:
    batch_sizes: list[int]
    rounds: int
    seconds: float  # per engine per round
    rss_samples: int  # training samples (steps x batch size) in each memory process; 0: skip
    engines: list[str]
    clock: str = "wall"

    def rss_steps(self, batch_size: int) -> int:
        return max(10, self.rss_samples // batch_size)


FULL = dict(rounds=15, seconds=0.3, rss_samples=64_000)
QUICK = dict(rounds=5, seconds=0.04, rss_samples=4_000)


def run_benchmark(settings: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    machine = machine_info()
    log(format_machine(machine))
    verification = [verify_losses(settings.engines, b) for b in settings.batch_sizes]
    log(
        f"losses agree (largest relative difference {max(v['max_relative_error'] for v in verification):.1e})"
    )
    engines, unavailable = build_engines(settings.engines, initial_parameters())
    for name, reason in unavailable.items():
        log(f"{name}: {reason}")
    results = []
    for batch_size in settings.batch_sizes:
        log(
            f"timing batch size {batch_size}: {settings.rounds} rounds of {settings.seconds} s "
            f"({settings.clock} clock) per engine"
        )
        timings = time_batch_size(engines, batch_size, settings.rounds, settings.seconds, settings.clock)
        for name, timing in timings.items():
            results.append({"engine": name, "batch_size": batch_size, **timing, "memory": None})
    if settings.rss_samples:
        log("peak RSS, one process per engine and batch size")
        for row in results:
            steps = settings.rss_steps(row["batch_size"])
            row["memory"] = measure_rss(row["engine"], row["batch_size"], steps)
    return {
        "schema": SCHEMA_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m experiments.bench " + " ".join(sys.argv[1:]),
        "machine": machine,
        "config": {
            **dataclasses.asdict(settings),
            "model": {
                "vocab_size": VOCAB_SIZE,
                "n_embd": N_EMBD,
                "block_size": BLOCK_SIZE,
                "n_hidden": N_HIDDEN,
                "learning_rate": LEARNING_RATE,
                "dtype": "float32",
            },
        },
        "engines": {
            spec.name: {
                "description": spec.description,
                "baseline": spec.baseline,
                "available": spec.name in engines,
                "reason": unavailable.get(spec.name),
            }
            for spec in ENGINES
            if spec.name in settings.engines
        },
        "unavailable": unavailable,
        "verification": verification,
        "results": results,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m experiments.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer and shorter rounds: under a minute")
    parser.add_argument(
        "--json", type=Path, default=Path("runs/bench.json"), help="where to write the results"
    )
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256, 4096])
    parser.add_argument("--engines", nargs="+", choices=list(ENGINE_BY_NAME), default=list(ENGINE_BY_NAME))
    parser.add_argument(
        "--clock",
        choices=list(CLOCKS),
        default="wall",
        help="wall time, or this process's CPU time (steadier when other processes share the CPUs)",
    )
    parser.add_argument("--rounds", type=int, help="timing rounds per batch size")
    parser.add_argument("--seconds", type=float, help="seconds per engine per round")
    parser.add_argument(
        "--rss-samples", type=int, help="samples (steps x batch) per memory process, 0 to skip memory"
    )
    parser.add_argument("--rss-steps", type=int, help=argparse.SUPPRESS)  # for --rss-worker
    parser.add_argument("--rss-worker", choices=list(ENGINE_BY_NAME), help=argparse.SUPPRESS)
    parser.add_argument("--profile", choices=list(ENGINE_BY_NAME), help="cProfile one engine instead")
    parser.add_argument("--profile-steps", type=int, default=2000)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    args = parse_args(argv)
    if args.rss_worker:
        print(json.dumps(rss_worker(args.rss_worker, args.batch_sizes[0], args.rss_steps)))
        return None
    if args.profile:
        for batch_size in args.batch_sizes:
            print(profile(args.profile, batch_size, args.profile_steps), end="\n\n")
        return None
    defaults = QUICK if args.quick else FULL
    settings = Settings(
        batch_sizes=args.batch_sizes,
        rounds=args.rounds or defaults["rounds"],
        seconds=args.seconds or defaults["seconds"],
        rss_samples=defaults["rss_samples"] if args.rss_samples is None else args.rss_samples,
        engines=args.engines,
        clock=args.clock,
    )
    report = run_benchmark(settings)
    print()
    print(format_table(report))
    write_text(args.json, json.dumps(report, indent=2) + "\n")  # atomic, with the usual permissions
    print(f"\nwrote {args.json}")
    return report


if __name__ == "__main__":
    main()
