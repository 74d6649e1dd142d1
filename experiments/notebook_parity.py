"""The backprop-ninja notebook's exercises 1-3 on tape, checked against torch and printed as the
notebook prints them.

    python -m experiments.notebook_parity [--dtype float64]

Exercise 1: every one of the 26 intermediates of the decomposed forward pass.
Exercise 2: the fused cross-entropy (one op, VJP (softmax - onehot) / n) against torch's.
Exercise 3: the fused batchnorm (one op, the notebook's one-line VJP) against torch's autograd
through the decomposed batchnorm with Bessel's correction.
Exits 1 if any gradient is not approximately equal to torch's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

import tape
from experiments.notebook import NOTEBOOK_ORDER, batch, forward, parameters
from tape.parity import ParityReport, compare


def cross_entropy(lib: Any, logits: Any, Yb: Any) -> Any:
    if lib is tape:
        return tape.cross_entropy(logits, Yb)
    return lib.nn.functional.cross_entropy(logits, Yb)


def exercise_2(lib: Any, **inputs: Any) -> dict[str, Any]:
    """The decomposed forward up to the logits, then the loss in one fused step."""
    logits = forward(lib, **inputs)["logits"]
    loss_fast = cross_entropy(lib, logits, inputs["Yb"])
    return {"logits": logits, "loss_fast": loss_fast}


def exercise_3(lib: Any, C, W1, b1, W2, b2, bngain, bnbias, Xb, Yb, n) -> dict[str, Any]:
    """The batchnorm layer in one fused step (torch: autograd through the notebook's formula)."""
    hprebn = C[Xb].view(n, -1) @ W1 + b1
    if lib is tape:
        hpreact_fast = tape.batchnorm(hprebn, bngain, bnbias, unbiased=True)
    else:
        bnvar = hprebn.var(0, keepdim=True, unbiased=True)
        hpreact_fast = bngain * (hprebn - hprebn.mean(0, keepdim=True)) / lib.sqrt(bnvar + 1e-5) + bnbias
    loss_fast = cross_entropy(lib, lib.tanh(hpreact_fast) @ W2 + b2, Yb)
    return {
        "hprebn": hprebn,
        "bngain": bngain,
        "bnbias": bnbias,
        "hpreact_fast": hpreact_fast,
        "loss_fast": loss_fast,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.notebook_parity", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--seed", type=int, default=42, help="seed of the parameters and the batch")
    args = parser.parse_args(argv)
    dtype = np.dtype(args.dtype)
    params, data = parameters(args.seed), batch(args.seed)

    reports: list[ParityReport] = []
    exercises = [
        ("exercise 1: backprop through every intermediate", forward, "loss", NOTEBOOK_ORDER, None),
        (
            "exercise 2: cross-entropy as one fused op",
            exercise_2,
            "loss_fast",
            ["loss_fast", "logits"],
            "loss_fast",
        ),
        (
            "exercise 3: batchnorm as one fused op",
            exercise_3,
            "loss_fast",
            ["hpreact_fast", "hprebn", "bngain", "bnbias"],
            "hpreact_fast",
        ),
    ]
    for title, fn, loss, order, value in exercises:
        report = compare(fn, params, data, dtype=dtype, loss=loss, order=order)
        reports.append(report)
        print(f"# {title} ({dtype})")
        if value is not None:
            print(f"{value}: maximum difference from torch's value {report[value].value_maxdiff}")
        print(report, end="\n\n")

    failed = [row.name for report in reports for row in report if not row.ok]
    if failed:
        print(f"not approximately equal to torch: {', '.join(failed)}")
        return 1
    print("all gradients approximately equal to torch's")
    return 0


if __name__ == "__main__":
    sys.exit(main())
