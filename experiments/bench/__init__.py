"""Benchmark: a training step of the makemore MLP and WaveNet on tape, torch eager and NumPy.

    python -m experiments.bench                 # the full run (a few minutes)
    python -m experiments.bench --quick         # about a minute
    python -m experiments.bench --workload wavenet
    python -m experiments.bench --profile tape-decomposed --batch-sizes 32
    python -m experiments.bench --profile-ops tape-nn --workload mlp --batch-sizes 32 4096

Two workloads, each a model's step (forward, cross-entropy, zero_grad, backward, SGD) on random
batches drawn from a fixed pseudo-dataset:

``mlp``: the backprop-ninja notebook's MLP (vocab 27, n_embd 10, block 3, n_hidden 200), at
batch 32, 256 and 4096. The engines:

- ``tape-nn``: the makemore experiment's model (``experiments.makemore.model.build_mlp``:
  Embedding, Flatten, Linear, BatchNorm1d, Tanh, Linear) with the fused ``nn.cross_entropy``
  and batchnorm; compared with ``torch-nn``.
- ``tape-replay``: tape-nn's step under ``tape.replay`` (recorded once, then replayed).
- ``tape-decomposed``: the notebook's exercise-1 graph (about 20 forward ops), the very
  ``forward(lib, ...)`` the tests run; compared with ``torch-decomposed``, the same function on torch.
- ``torch-nn`` / ``torch-decomposed``: torch eager autograd, the baselines (optional).
- ``numpy-floor``: forward and backward written by hand in NumPy, the nn model's floor.

``wavenet``: the makemore WaveNet experiment's model (``experiments/makemore/wavenet.py``) at
batch 32: ``tape-nn``, ``tape-replay``, ``torch-eager`` (the lecture's own layer classes on
torch) and ``torch-nn`` (torch.nn modules, the baseline); see ``wavenet``.

All run in one process on one thread, in interleaved rounds; each engine's steps/s is divided
by its torch baseline's steps/s of the same round. Peak RSS comes from a separate process per
engine. Before timing, every engine must reach the same losses from the same numbers.

One job a module:

- ``workload``: what the MLP engines train (the model's sizes, initial parameters, batches)
- ``engines``: the MLP's engines (tape-nn, tape-replay, tape-decomposed, torch-nn,
  torch-decomposed), the tape model base and the replay wrapper
- ``floor``: the numpy-floor step, forward and backward derived by hand
- ``wavenet``: the WaveNet workload and its engines; ``torch_wavenet``: its torch models
- ``workloads``: a workload (engines, batches, reference losses), the two of them
- ``verification``: every engine's first losses against its workload's reference
- ``timing``: calibrated, interleaved rounds and the ratios to torch
- ``memory``: peak RSS, one fresh process per engine and batch size
- ``machine``: what the numbers were measured on
- ``profiling``: cProfile of one engine, in µs per step
- ``op_profile``: per op and per step: each op's forward and VJPs, and the rest of the step
- ``run``: a whole benchmark run, as one JSON-ready report
- ``report``: the report's document and its Markdown tables
- ``cli``: the command (``__main__`` runs it)
"""

import os
import sys

# One thread, pinned before NumPy or torch load their thread pools: this package's first lines
# run before any of its modules import them (importing it after them cannot change their pools
# any more; the machine description reports that case).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
THREADS_PINNED_BEFORE_IMPORT = "numpy" not in sys.modules and "torch" not in sys.modules
for _variable in THREAD_VARIABLES:
    os.environ[_variable] = "1"
