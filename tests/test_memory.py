"""tape.memory: the allocation setting applied at ``import tape``, its opt-out, and the evaluation
that works within it (its results unchanged, bit for bit). Fresh processes for anything about
the setting itself: it is the process's, and this one has already imported tape."""

import json
import os
import subprocess
import sys
import textwrap
import types
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from makemore_runs import make_names

import nn
import tape
from experiments.makemore import data, evaluation, model, report, wavenet
from tape import memory

ROOT = Path(__file__).resolve().parents[1]
GLIBC = memory._glibc() is not None
needs_glibc = pytest.mark.skipif(not GLIBC, reason="mallopt and malloc_trim are glibc's")


def python(code: str, allocator: str | None = None) -> subprocess.CompletedProcess:
    """``code`` run by a fresh Python in the repository, ``TAPE_ALLOCATOR`` set to ``allocator``
    (None: unset, the default)."""
    env = {k: v for k, v in os.environ.items() if k != memory.ENV}
    if allocator is not None:
        env[memory.ENV] = allocator
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done


SETTING = """
import dataclasses, json
import tape
print(json.dumps(dataclasses.asdict(tape.memory.allocator())))
"""

# faults of a second 128 MiB array after the first was freed: none when the freed block is kept;
# a fresh mapping's every page (or every 2 MiB huge page) otherwise
REUSE = """
import json, resource
import numpy as np
import tape
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS")) * 1024
a = np.ones(1 << 24)
del a
freed = rss()
before = faults()
a = np.ones(1 << 24)
second = faults() - before
del a
tape.memory.release()
print(json.dumps({"second": second, "released": freed - rss()}))
"""


def setting(allocator: str | None = None) -> dict:
    return json.loads(python(SETTING, allocator).stdout)


def test_keep_is_applied_at_import():
    assert setting() == {
        "mode": "keep",
        "malloc_tuned": GLIBC,
        "numpy_hugepage": None if memory._hugepage_switch() is None else False,
    }


def test_system_leaves_the_process_as_it_is():
    state = setting("system")
    assert (state["mode"], state["malloc_tuned"]) == ("system", False)
    if memory._hugepage_switch() is not None:  # NumPy's huge-page advice as a process without tape has it
        plain = python(NUMPY_HUGEPAGE)
        assert state["numpy_hugepage"] == (plain.stdout.strip() == "True")


NUMPY_HUGEPAGE = """
try:
    from numpy._core.multiarray import _set_madvise_hugepage
except ImportError:
    from numpy.core.multiarray import _set_madvise_hugepage
print(_set_madvise_hugepage(True))
"""


def test_an_unknown_value_warns_and_changes_nothing():
    done = python(SETTING, "hugepages-please")
    assert "RuntimeWarning" in done.stderr and "TAPE_ALLOCATOR='hugepages-please'" in done.stderr
    assert json.loads(done.stdout)["mode"] == "system"


@needs_glibc
def test_keep_reuses_freed_blocks_and_release_returns_them():
    kept = json.loads(python(REUSE).stdout)
    assert kept["second"] < 16  # the freed block, already in memory
    assert kept["released"] > 64 << 20  # malloc_trim gave it back


@needs_glibc
def test_system_maps_fresh_pages():
    fresh = json.loads(python(REUSE, "system").stdout)
    assert fresh["second"] >= 32  # 128 MiB in 4 KiB pages, or in 2 MiB huge pages


def test_set_allocator_switches_and_restores():
    code = """
    import numpy as np
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:
        from numpy.core.multiarray import _set_madvise_hugepage
    numpy_own = _set_madvise_hugepage(True)
    _set_madvise_hugepage(numpy_own)
    from tape import memory  # keep applied
    assert memory.allocator().numpy_hugepage is False
    assert memory.set_allocator("system").numpy_hugepage == numpy_own  # put back as NumPy had it
    assert memory.set_allocator("system") == memory.allocator()
    again = memory.set_allocator("keep")
    assert again.mode == "keep" and again.numpy_hugepage is False
    print("ok")
    """
    assert python(code).stdout.strip() == "ok"


def test_set_allocator_refuses_an_unknown_mode():
    before = memory.allocator()
    with pytest.raises(ValueError, match="'keep', 'system'"):
        memory.set_allocator("fast")
    assert memory.allocator() == before


# ---------------------------------------------------------------- evaluation, unchanged


def reference_evaluate(model: nn.Module, examples: data.Examples, chunk: int) -> float:
    """evaluation.evaluate as it was before the allocation work: the numbers it must still give."""
    model.eval()
    total = 0.0
    with tape.no_grad():
        for Xb, Yb in examples.chunks(chunk):
            total += nn.cross_entropy(model(Xb), Yb).item() * Xb.shape[0]
    return total / len(examples)


def reference_calibrate(model: nn.Sequential, examples: data.Examples, chunk: int) -> None:
    """evaluation.calibrate_batchnorm as it was: a fresh float64 copy of every chunk, out of place."""
    model.eval()
    for i, layer in enumerate(model):
        if isinstance(layer, nn.BatchNorm1d):
            with tape.no_grad():
                total, rows = 0, 0
                for x in reference_outputs(model.layers[:i], examples, chunk):
                    total, rows = total + x.sum(0), rows + len(x)
                mean = total / rows
                var = sum(
                    ((x - mean) ** 2).sum(0) for x in reference_outputs(model.layers[:i], examples, chunk)
                )
            layer.running_mean[...] = mean
            layer.running_var[...] = var / (rows - 1)


def reference_outputs(
    layers: Sequence[nn.Module], examples: data.Examples, chunk: int
) -> Iterator[np.ndarray]:
    for x, _ in examples.chunks(chunk):
        for layer in layers:
            x = layer(x)
        yield x.array.reshape(-1, x.shape[-1]).astype(np.float64)


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> data.Examples:
    names = data.load(make_names(tmp_path_factory.mktemp("data") / "names.txt", count=900))
    return data.examples(names, block_size=4)  # 4: a power of two, for the WaveNet as well


BUILDERS = {"mlp": model.build_mlp, "wavenet": wavenet.build_wavenet}


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("chunk", [997, 1 << 20])  # several chunks, a short last one; one chunk
def test_evaluation_gives_the_numbers_it_gave(examples, name, chunk):
    def trained(seed: int = 7) -> nn.Sequential:
        m = BUILDERS[name](data.vocab_size, 5, 4, 24, np.random.default_rng(seed))
        for layer in m:  # running statistics far from the initial ones: calibration must change them
            if isinstance(layer, nn.BatchNorm1d):
                layer.running_mean[...] = 3.0
                layer.running_var[...] = 0.5
        return m

    ours, theirs = trained(), trained()
    evaluation.calibrate_batchnorm(ours, examples, chunk)
    reference_calibrate(theirs, examples, chunk)
    for (key, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        np.testing.assert_array_equal(a, b, err_msg=key)
    assert evaluation.evaluate(ours, examples, chunk) == reference_evaluate(theirs, examples, chunk)


def test_the_results_phase_hands_its_memory_back_once_after_the_evaluations(examples, monkeypatch, tmp_path):
    events = []
    monkeypatch.setattr(tape.memory, "release", lambda: events.append("release") or True)
    evaluate = evaluation.evaluate

    def counted(*args, **kwargs):
        events.append("evaluate")
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate", counted)
    m = model.build_mlp(data.vocab_size, 5, 4, 24, np.random.default_rng(0))
    run = types.SimpleNamespace(model=m, step=1, seconds=1.0)
    saver = types.SimpleNamespace(path=tmp_path / "checkpoint.npz", options={})
    report.write_essentials(run, {"train": examples, "val": examples}, saver)
    assert events == ["evaluate", "evaluate", "release"]  # each evaluation reuses the last one's memory
