"""The makemore experiments on tape, one job a module.

- ``data``: names.txt read (or fetched and verified), split as the notebook, compact examples
- ``model``: what makes an experiment (``Experiment``: model, defaults, learning-rate schedule),
  and the makemore MLP, built here and nowhere else
- ``wavenet``: makemore part 5's hierarchical model, the second ``Experiment``
- ``checkpoint``: checkpoints and the loss log of any nn model trained on random batches, with
  the diagnostics' update log and histograms (``nn.diagnostics``)
- ``loop``: the training loop (SGD steps, diagnostics sampled every few steps, checkpoints,
  signals, divergence)
- ``evaluation``: batchnorm calibration, the loss of a split, sampling names
- ``report``: a finished run's results (diagnostics included), plot (the loss figure), progress
  (the progress line)
- ``rundir``: the output directory (one run at a time, only its own files)
- ``options``, ``cli``: the commands, ``python -m experiments.makemore_mlp`` and
  ``python -m experiments.makemore_wavenet`` (``cli.main(argv, experiment)``)

data, checkpoint, loop, evaluation, report and the command know nothing of either model: one
more model is one more small module with its own ``Experiment``.
"""
