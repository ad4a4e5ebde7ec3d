"""Transfer learning measured offline: pretrain on digits 0-4, then train on few labels of digits 5-9 three ways.

Usage: python -m benchmarks.transfer [--pretrain-epochs 8] [--epochs 6] [--frozen-epochs 2] [--train-images 300]
                                     [--seeds 0 1 2] [--csv benchmarks/transfer.csv] [--json out.json]

ImageNet weights cannot be downloaded here, so a paper-point Xception (`XceptionConfig.paper()`, 20.8 M
parameters without its head) is pretrained on scikit-learn's digits 0-4 at 32x32, and its weights are
saved as a head-less `keras.applications.Xception` file (the format ``weights = PATH`` reads). Then a fresh
5-class model is trained on ``--train-images`` images of digits 5-9 at the same budget, three ways:
``scratch`` (no weights), ``inherited`` (the weights, everything trained from the first step at the
study's rate) and ``transfer`` (the weights, the ``[transfer]`` schedule: the inherited layers frozen
for ``--frozen-epochs``, then everything at the fine-tune rate). Every way runs through
`xsearch.study.fit.train_and_evaluate`, as a trial does. The table: validation accuracy after
each epoch, the median over the seeds and each seed's.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from benchmarks.throughput import environment, table, write_json
from xsearch.data import Dataset, load_dataset
from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.weights import inherit_weights, inherited_layers
from xsearch.study.fit import train_and_evaluate, with_normalization
from xsearch.study.spec import TrainingSpec, TransferSpec

SIZE = 32
WAYS = ("scratch", "inherited", "transfer")


def digits_task(data: Dataset, classes: range, train_images: int | None, seed: int) -> Dataset:
    """The images of ``classes`` (labelled from 0), at most ``train_images`` of them for training."""

    def pick(x: np.ndarray, y: np.ndarray, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
        keep = np.flatnonzero(np.isin(y, classes))
        if limit is not None:
            keep = np.sort(np.random.default_rng(seed).permutation(keep)[:limit])
        return np.asarray(x[keep]), np.asarray(y[keep]) - classes.start

    x_train, y_train = pick(data.x_train, data.y_train, train_images)
    x_val, y_val = pick(
        np.concatenate([data.x_val, data.x_test]), np.concatenate([data.y_val, data.y_test]), None
    )
    return Dataset(
        name=f"digits {classes.start}-{classes.stop - 1}",
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_val[:0],
        y_test=y_val[:0],
        num_classes=len(classes),
        class_names=[str(c) for c in classes],
        mean=data.mean,
        std=data.std,
    )


def pretrain(task: Dataset, spec: TrainingSpec, path: Path) -> list[float]:
    """Train the paper point on ``task`` and save its weights as a head-less Keras Xception's; its curve."""
    keras.utils.set_random_seed(100)
    core = build_model(
        XceptionConfig.paper(), (SIZE, SIZE, 3), task.num_classes, bn_momentum=spec.bn_momentum
    )
    result = train_and_evaluate(
        with_normalization(core, task.mean, task.std), task, spec, seed=100, workers=1
    )
    reference = keras.applications.Xception(
        weights=None, include_top=False, input_shape=(71, 71, 3)
    )
    reference.set_weights(core.get_weights()[:-2])  # layer for layer, the head left out
    reference.save_weights(path)
    return result.curves["val_accuracy"]


def train_way(
    way: str, task: Dataset, spec: TrainingSpec, transfer: TransferSpec, weights: Path, seed: int
) -> dict[str, Any]:
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    core = build_model(
        XceptionConfig.paper(), (SIZE, SIZE, 3), task.num_classes, bn_momentum=spec.bn_momentum
    )
    inherited = []
    if way != "scratch":
        inherited = inherited_layers(core, inherit_weights(core, str(weights)))
    result = train_and_evaluate(
        with_normalization(core, task.mean, task.std),
        task,
        spec,
        seed=seed,
        workers=1,
        transfer=transfer if way == "transfer" else None,
        inherited=inherited,
    )
    return {
        "val_accuracy": result.curves["val_accuracy"],
        "train_time_s": result.train_time_s,
        "params_inherited": sum(layer.count_params() for layer in inherited),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain-epochs", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--frozen-epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--fine-tune-learning-rate", type=float, default=1e-4)
    parser.add_argument("--train-images", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--csv", default="benchmarks/transfer.csv")
    parser.add_argument("--json")
    args = parser.parse_args()

    data = load_dataset("digits", SIZE, seed=0, val_fraction=0.2, test_fraction=0.1)
    base = TrainingSpec(
        batch_size=32,
        optimizer="adam",
        learning_rate=args.learning_rate,
        schedule="constant",
        augment=False,
        bn_momentum=0.9,
    )
    source, target = (
        digits_task(data, range(0, 5), None, 0),
        digits_task(data, range(5, 10), args.train_images, 0),
    )
    print(
        f"pretraining the paper point on {len(source.y_train)} images of {source.name} at {SIZE}x{SIZE}, "
        f"{args.pretrain_epochs} epochs"
    )
    transfer = TransferSpec(
        frozen_epochs=args.frozen_epochs, fine_tune_learning_rate=args.fine_tune_learning_rate
    )
    spec = TrainingSpec(**{**vars(base), "epochs": args.epochs})
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "digits-0-4.weights.h5"
        pretrained = pretrain(
            source, TrainingSpec(**{**vars(base), "epochs": args.pretrain_epochs}), weights
        )
        print(f"pretrained: validation accuracy per epoch {[round(a, 3) for a in pretrained]}")
        runs = {
            (way, seed): train_way(way, target, spec, transfer, weights, seed)
            for seed in args.seeds
            for way in WAYS
        }
    rows, lines = [], []
    for way in WAYS:
        for epoch in range(args.epochs):
            values = [runs[way, seed]["val_accuracy"][epoch] for seed in args.seeds]
            rows.append([way, epoch + 1, statistics.median(values), *values])
        lines.append(
            f"{way}: train time per seed {[round(runs[way, s]['train_time_s'], 1) for s in args.seeds]} s, "
            f"params inherited {runs[way, args.seeds[0]]['params_inherited']:,}"
        )
    headers = ["way", "epoch", "median", *(f"seed {seed}" for seed in args.seeds)]
    print(
        f"validation accuracy on {len(target.y_val)} images of {target.name}, trained on {len(target.y_train)}:"
    )
    print(table(headers, [[w, e, f"{m:.3f}", *(f"{v:.3f}" for v in vs)] for w, e, m, *vs in rows]))
    print("\n".join(lines))
    with open(args.csv, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(headers)
        writer.writerows([[w, e, round(m, 4), *(round(v, 4) for v in vs)] for w, e, m, *vs in rows])
    write_json(
        args.json,
        {
            "environment": environment(),
            "arguments": vars(args),
            "pretrained": pretrained,
            "runs": {f"{way} seed {seed}": run for (way, seed), run in runs.items()},
        },
    )


if __name__ == "__main__":
    main()
