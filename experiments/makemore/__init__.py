"""The makemore experiments on tape, one job a module.

- ``data``: names.txt read (or fetched and verified), split as the notebook, compact examples
- ``model``: the makemore MLP and its learning-rate schedule, built here and nowhere else
- ``checkpoint``: checkpoints and the loss log of any nn model trained on random batches
- ``loop``: the training loop (SGD steps, checkpoints, signals, divergence)
- ``evaluation``: batchnorm calibration, the loss of a split, sampling names
- ``report``: a finished run's results, plot (the loss figure), progress (the progress line)
- ``rundir``: the output directory (one run at a time, only its own files)
- ``options``, ``cli``: the command, ``python -m experiments.makemore_mlp``

data, checkpoint, loop and evaluation know nothing of the MLP: a second model reuses them.
"""
