"""The notebook's character-level MLP trained on names.txt with nn on tape.

    python -m experiments.makemore_mlp                      # 200k steps, as the notebook
    python -m experiments.makemore_mlp --steps 2000 --out runs/quick
    python -m experiments.makemore_mlp --resume             # continue from the last checkpoint

Writes to ``--out``: checkpoint.npz (every ``--checkpoint-every`` steps, on Ctrl-C and at the
end), then metrics.json, loss.png, samples.txt, model.npz and graph.svg. Every file is
written atomically, and ``--resume`` continues to the same result as an uninterrupted run,
bit for bit: the checkpoint holds the parameters, buffers, random-number state and losses.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

import nn
import tape
from experiments import data
from experiments.plot import plot_loss
from tape import viz
from tape.atomic import atomic_path, write_text

CHECKPOINT = "checkpoint.npz"


@dataclasses.dataclass(frozen=True)
class Config:
    """What determines the result: a checkpoint only resumes under the same config."""

    steps: int = 200_000
    batch_size: int = 32
    lr: float = 0.1
    n_embd: int = 10
    n_hidden: int = 200
    block_size: int = 3
    seed: int = 42


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Config()
    parser = argparse.ArgumentParser(
        prog="python -m experiments.makemore_mlp", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--steps", type=int, default=defaults.steps, help="SGD steps (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument(
        "--lr", type=float, default=defaults.lr, help="learning rate, divided by 10 after half the steps"
    )
    parser.add_argument("--n-embd", type=int, default=defaults.n_embd, help="character embedding size")
    parser.add_argument("--n-hidden", type=int, default=defaults.n_hidden, help="hidden layer size")
    parser.add_argument("--block-size", type=int, default=defaults.block_size, help="context length")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--data", type=Path, default=data.DEFAULT_PATH, help="names.txt, one name a line")
    parser.add_argument("--out", type=Path, default=Path("runs/makemore_mlp"), help="output directory")
    parser.add_argument("--checkpoint-every", type=int, default=10_000, help="steps between checkpoints")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    parser.add_argument(
        "--pause-at", type=int, default=None, metavar="STEP", help="save a checkpoint at STEP and stop"
    )
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size", "n_embd", "n_hidden", "block_size", "checkpoint_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.batch_size < 2:
        parser.error("--batch-size must be at least 2: batchnorm needs two examples to normalise")
    return args


# ---------------------------------------------------------------- model and training state


def build_model(config: Config, rng: np.random.Generator) -> nn.Sequential:
    model = nn.Sequential(
        nn.Embedding(data.vocab_size, config.n_embd, generator=rng),
        nn.Flatten(),
        nn.Linear(config.n_embd * config.block_size, config.n_hidden, generator=rng),
        nn.BatchNorm1d(config.n_hidden),
        nn.Tanh(),
        nn.Linear(config.n_hidden, data.vocab_size, generator=rng),
    )
    # the notebook's init: the tanh gain 5/3 into the hidden layer, and an output layer that
    # starts unconfident (near-uniform probabilities, loss near log 27 at step 0)
    model[2].weight.data *= 5 / 3
    model[5].weight.data *= 0.1
    return model


def learning_rate(config: Config, step: int) -> float:
    return config.lr if step < config.steps // 2 else config.lr / 10


@dataclasses.dataclass
class Run:
    """Everything a checkpoint holds besides the config."""

    model: nn.Sequential
    rng: np.random.Generator  # draws the batches
    step: int  # steps done
    losses: np.ndarray  # training loss of each step, (steps,) float32
    seconds: float  # training wall time so far, over all sessions


def new_run(config: Config) -> Run:
    rng = np.random.default_rng(config.seed)
    model = build_model(config, rng)
    return Run(model, rng, 0, np.zeros(config.steps, dtype=np.float32), 0.0)


def save_checkpoint(run: Run, config: Config, path: Path) -> None:
    arrays = {f"model/{name}": value for name, value in run.model.state_dict().items()}
    arrays["losses"] = run.losses[: run.step]
    arrays["step"] = np.array(run.step)
    arrays["seconds"] = np.array(run.seconds)
    arrays["rng"] = np.array(json.dumps(run.rng.bit_generator.state))
    arrays["config"] = np.array(json.dumps(dataclasses.asdict(config)))
    with atomic_path(path) as temporary, open(temporary, "wb") as f:
        np.savez(f, **arrays)


def load_checkpoint(config: Config, path: Path) -> Run:
    run = new_run(config)
    with np.load(path, allow_pickle=False) as checkpoint:
        saved = Config(**json.loads(str(checkpoint["config"])))
        if saved != config:
            changed = ", ".join(
                f"--{k.replace('_', '-')} {v}"
                for k, v in dataclasses.asdict(saved).items()
                if getattr(config, k) != v
            )
            raise SystemExit(
                f"error: the checkpoint {path} was made with {changed}; resume with the same options "
                "or use another --out"
            )
        run.model.load_state_dict(
            {k.removeprefix("model/"): checkpoint[k] for k in checkpoint if k.startswith("model/")}
        )
        run.rng.bit_generator.state = json.loads(str(checkpoint["rng"]))
        run.step = int(checkpoint["step"])
        run.losses[: run.step] = checkpoint["losses"]
        run.seconds = float(checkpoint["seconds"])
    return run


class StopOnInterrupt:
    """Ctrl-C asks the loop to stop after the current step (and save); a second Ctrl-C stops at once.

    Stopping between steps matters: an interrupt in the middle of the SGD update would leave
    half the parameters updated, and a checkpoint of that could not resume bit for bit.
    """

    requested = False

    def __enter__(self) -> StopOnInterrupt:
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


class Progress:
    """A one-line progress display: step, running loss, steps/s and time left.

    On a terminal the line redraws in place (``\\r``) a few times a second; in a log file it
    prints one line every 10% of the run.
    """

    def __init__(self, total: int, start: int, stream: TextIO = sys.stderr) -> None:
        self.total, self.start, self.stream = total, start, stream
        self.tty = stream.isatty()
        self.began = self.last = time.perf_counter()
        self.running_loss: float | None = None
        self.next_line = start + total // 10

    def update(self, step: int, loss: float) -> None:
        # an exponential moving average over about the last 100 steps
        self.running_loss = loss if self.running_loss is None else 0.99 * self.running_loss + 0.01 * loss
        if self.tty:
            now = time.perf_counter()
            if now - self.last >= 0.2 or step == self.total:
                self.last = now
                self.stream.write("\r" + self.line(step, now))
                self.stream.flush()
        elif step >= self.next_line or step == self.total:
            self.next_line = step + max(1, self.total // 10)
            self.stream.write(self.line(step, time.perf_counter()) + "\n")
            self.stream.flush()

    def line(self, step: int, now: float) -> str:
        rate = (step - self.start) / max(now - self.began, 1e-9)
        left = (self.total - step) / rate if rate else 0.0
        return (
            f"step {step:>{len(str(self.total))}}/{self.total} | loss {self.running_loss:.4f} | "
            f"{rate:,.0f} steps/s | {format_seconds(left)} left "
        )

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


def train(
    run: Run,
    config: Config,
    Xtr: np.ndarray,
    Ytr: np.ndarray,
    out: Path,
    checkpoint_every: int,
    pause_at: int | None,
) -> bool:
    """SGD from ``run.step`` on; returns False if it stopped early (Ctrl-C or ``pause_at``)."""
    model = run.model
    optimizer = nn.SGD(model.parameters(), lr=config.lr)
    end = config.steps if pause_at is None else min(pause_at, config.steps)
    progress = Progress(config.steps, run.step)
    began = time.perf_counter()
    with StopOnInterrupt() as interrupt:
        for step in range(run.step, end):
            ix = run.rng.integers(0, Xtr.shape[0], config.batch_size)
            loss = nn.cross_entropy(model(Xtr[ix]), Ytr[ix])
            optimizer.zero_grad()
            loss.backward()
            optimizer.lr = learning_rate(config, step)
            optimizer.step()

            run.losses[step] = loss.item()
            run.step = step + 1
            progress.update(run.step, float(run.losses[step]))
            if run.step % checkpoint_every == 0 or run.step == end or interrupt.requested:
                now = time.perf_counter()
                run.seconds += now - began
                began = now
                save_checkpoint(run, config, out / CHECKPOINT)
                if interrupt.requested:
                    break
    progress.close()
    return run.step == config.steps


# ---------------------------------------------------------------- after training


def calibrate_batchnorm(model: nn.Sequential, X: np.ndarray, chunk: int = 16384) -> None:
    """Set each BatchNorm1d's running statistics to those of its inputs over all of ``X``.

    The notebook's calibration after training: the running averages lag the trained weights.
    Two passes over chunks (mean, then variance about it) keep memory small and the variance exact.
    """
    model.eval()
    for i, layer in enumerate(model):
        if isinstance(layer, nn.BatchNorm1d):
            with tape.no_grad():
                mean = sum(x.sum(0) for x in _outputs(model.layers[:i], X, chunk)) / X.shape[0]
                var = sum(((x - mean) ** 2).sum(0) for x in _outputs(model.layers[:i], X, chunk))
            layer.running_mean[...] = mean
            layer.running_var[...] = var / (X.shape[0] - 1)


def _outputs(layers: Sequence[nn.Module], X: np.ndarray, chunk: int) -> Iterator[np.ndarray]:
    """The output of ``layers`` for ``X``, chunk by chunk, in float64."""
    for start in range(0, X.shape[0], chunk):
        x = X[start : start + chunk]
        for layer in layers:
            x = layer(x)
        yield x.array.astype(np.float64)


def evaluate(model: nn.Module, X: np.ndarray, Y: np.ndarray, chunk: int = 16384) -> float:
    """Mean cross-entropy over all of (X, Y) in evaluation mode."""
    model.eval()
    total = 0.0
    with tape.no_grad():
        for start in range(0, X.shape[0], chunk):
            Xb, Yb = X[start : start + chunk], Y[start : start + chunk]
            total += nn.cross_entropy(model(Xb), Yb).item() * Xb.shape[0]
    return total / X.shape[0]


def sample(
    model: nn.Module, rng: np.random.Generator, count: int, block_size: int, max_len: int = 50
) -> list[str]:
    """Names drawn character by character from the model, as the notebook samples."""
    model.eval()
    names = []
    with tape.no_grad():
        for _ in range(count):
            context, name = [0] * block_size, []
            while len(name) < max_len:
                logits = model(np.array([context])).array[0].astype(np.float64)
                probs = np.exp(logits - logits.max())
                ix = int(rng.choice(data.vocab_size, p=probs / probs.sum()))
                if ix == 0:
                    break
                name.append(data.itos[ix])
                context = context[1:] + [ix]
            names.append("".join(name))
    return names


def write_graph(model: nn.Module, Xb: np.ndarray, Yb: np.ndarray, path: Path) -> None:
    """graph.svg of one training step's tape, if Graphviz is there (else the .dot file alone)."""
    model.train()
    loss = nn.cross_entropy(model(Xb), Yb)  # moves the running statistics; calibration resets them
    loss.backward()  # so that the drawing shows the gradients' shapes
    try:
        viz.render(loss, path, names={"loss": loss})
    except viz.GraphvizNotFoundError as e:
        print(f"graph.svg: skipped. {e}")
    model.zero_grad()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = Config(
        args.steps, args.batch_size, args.lr, args.n_embd, args.n_hidden, args.block_size, args.seed
    )
    out: Path = args.out
    try:
        words = data.load_words(args.data)
    except data.DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    train_words, val_words, test_words = data.split(words)
    splits = {
        name: data.build_dataset(ws, config.block_size)
        for name, ws in (("train", train_words), ("val", val_words), ("test", test_words))
    }
    Xtr, Ytr = splits["train"]

    checkpoint = out / CHECKPOINT
    if args.resume and checkpoint.exists():
        run = load_checkpoint(config, checkpoint)
        print(f"resuming {checkpoint} at step {run.step}/{config.steps}")
    elif checkpoint.exists():
        print(
            f"error: {out} already holds a run ({checkpoint}); pass --resume to continue it, "
            "or choose another --out",
            file=sys.stderr,
        )
        return 2
    else:
        if args.resume:
            print(f"no checkpoint in {out}: starting from step 0")
        run = new_run(config)
    n_params = sum(p.numel() for p in run.model.parameters())
    print(
        f"{len(words)} names, contexts train/val/test {Xtr.shape[0]}/{splits['val'][0].shape[0]}/"
        f"{splits['test'][0].shape[0]}; model of {n_params} parameters; writing to {out}"
    )

    if not train(run, config, Xtr, Ytr, out, args.checkpoint_every, args.pause_at):
        print(f"stopped at step {run.step}; the checkpoint is saved: continue with --resume --out {out}")
        return 130 if args.pause_at is None or run.step < args.pause_at else 0

    model = run.model
    write_graph(model, Xtr[: config.batch_size], Ytr[: config.batch_size], out / "graph.svg")
    calibrate_batchnorm(model, Xtr)
    losses = {name: evaluate(model, X, Y) for name, (X, Y) in splits.items()}
    samples = sample(model, np.random.default_rng((config.seed, 1)), 20, config.block_size)

    metrics = {
        "steps": config.steps,
        **losses,
        "seconds": run.seconds,
        "steps_per_second": config.steps / run.seconds if run.seconds else None,
        "parameters": n_params,
        "config": dataclasses.asdict(config),
    }
    write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    write_text(out / "samples.txt", "\n".join(samples) + "\n")
    with atomic_path(out / "model.npz") as temporary, open(temporary, "wb") as f:
        np.savez(f, **model.state_dict())
    plot_loss(
        run.losses,
        out / "loss.png",
        lr_decay_step=config.steps // 2,
        final={"train": losses["train"], "val": losses["val"]},
    )
    print(
        f"train {losses['train']:.4f} | val {losses['val']:.4f} | test {losses['test']:.4f} | "
        f"{config.steps} steps in {format_seconds(run.seconds)} ({metrics['steps_per_second']:,.0f} steps/s)"
    )
    print("samples: " + " ".join(samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
