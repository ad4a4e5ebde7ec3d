"""xsearch's training overhead: a trial's training vs plain `model.fit` of the same model on the same data.

Usage: python -m benchmarks.overhead [--image-size 16] [--width 0.25] [--middle-repeats 1]
                                     [--epochs 3] [--batch-size 32] [--data-dir DIR]
                                     [--precision auto|float32|mixed_float16|mixed_bfloat16] [--json out.json]

Both variants train the same design (`build_model` + `with_normalization`, same seed) with the same
compile settings (`xsearch.study.fit.compile_model`), precision, epochs, batch size and per-epoch
validation on digits (or, with ``--data-dir``, downsampled-ImageNet npz files such as
`benchmarks.synthetic_imagenet` writes), without augmentation: the trial through
`train_and_evaluate` (a `BatchStream` over uint8 images), the baseline through `model.fit` on
float32 numpy arrays. Each variant runs twice, alternately, and the best wall time of each counts.
Also compares the images/s one thread of the input pipeline serves (`benchmarks.input_pipeline`)
with the images/s the trial trains.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import keras
import numpy as np

from benchmarks.input_pipeline import served_images_per_second
from benchmarks.throughput import environment, table, write_json
from xsearch.data import Dataset, load_dataset
from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.device import resolve_precision
from xsearch.study.fit import compile_model, train_and_evaluate, with_normalization
from xsearch.study.spec import PRECISIONS, TrainingSpec

GOAL_RATIO = 1.10
SEED = 0


def fresh_model(
    config: XceptionConfig, dataset: Dataset, spec: TrainingSpec, precision: str
) -> keras.Model:
    """The design with its normalization layer in ``precision``, rebuilt from the same seed for every run."""
    keras.backend.clear_session()  # which also resets the dtype policy
    keras.config.set_dtype_policy(precision)
    keras.utils.set_random_seed(SEED)
    size = dataset.x_train.shape[1]
    core = build_model(config, (size, size, 3), dataset.num_classes, bn_momentum=spec.bn_momentum)
    return with_normalization(core, dataset.mean, dataset.std)


def run_trial(
    config: XceptionConfig, dataset: Dataset, spec: TrainingSpec, precision: str
) -> dict[str, float]:
    """Wall time of `train_and_evaluate`'s training (its `model.fit`) and its trained images/s."""
    result = train_and_evaluate(fresh_model(config, dataset, spec, precision), dataset, spec, SEED)
    return {"train_time_s": result.train_time_s, "trained_images_per_second": result.throughput}


def run_plain_fit(
    config: XceptionConfig, dataset: Dataset, spec: TrainingSpec, precision: str
) -> dict[str, float]:
    """Wall time of a plain `model.fit` on numpy arrays, compiled like a trial.

    It trains on as many images per epoch as a trial does (a trial's batches are all full).
    """
    model = fresh_model(config, dataset, spec, precision)
    steps = len(dataset.y_train) // spec.batch_size
    x_train, y_train = (
        dataset.x_train[: steps * spec.batch_size].astype(np.float32),
        dataset.y_train[: steps * spec.batch_size],
    )
    x_val = dataset.x_val.astype(np.float32)
    compile_model(model, spec, steps, dataset.num_classes)
    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        batch_size=spec.batch_size,
        epochs=spec.epochs,
        validation_data=(x_val, dataset.y_val),
        shuffle=True,
        verbose=0,
    )
    return {"train_time_s": time.perf_counter() - start}


def pipeline_rate(
    dataset: Dataset, batch_size: int, augment: bool, trained: float
) -> dict[str, Any]:
    """Images/s the input pipeline serves over the training split, and its ratio to ``trained``."""
    served = served_images_per_second(dataset.x_train, dataset.y_train, batch_size, augment)
    return {
        "augment": augment,
        "served_images_per_second": served,
        "served_over_trained": served / trained,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse(argv)
    if args.data_dir:
        dataset = load_dataset(
            "imagenet-npz", args.image_size, data_dir=args.data_dir, test_fraction=0.0
        )
    else:
        dataset = load_dataset("digits", args.image_size)
    config = XceptionConfig(middle_repeats=args.middle_repeats, width=args.width)
    spec = TrainingSpec(epochs=args.epochs, batch_size=args.batch_size, augment=False)
    precision = resolve_precision(args.precision)
    runs: dict[str, list[dict[str, float]]] = {"xsearch trial": [], "plain model.fit": []}
    for _ in range(args.repeats):
        runs["xsearch trial"].append(run_trial(config, dataset, spec, precision))
        runs["plain model.fit"].append(run_plain_fit(config, dataset, spec, precision))
    best = {name: min(r["train_time_s"] for r in results) for name, results in runs.items()}
    trained = max(r["trained_images_per_second"] for r in runs["xsearch trial"])
    pipeline = [
        pipeline_rate(dataset, args.batch_size, augment, trained) for augment in (False, True)
    ]
    report = {
        "benchmark": "overhead",
        "environment": environment(),
        "dataset": dataset.name,
        "image_size": args.image_size,
        "train_images": len(dataset.y_train),
        "config": config.to_dict(),
        "precision": precision,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "train_time_s": {
            name: [r["train_time_s"] for r in results] for name, results in runs.items()
        },
        "trial_train_time_s": best["xsearch trial"],
        "plain_fit_time_s": best["plain model.fit"],
        "overhead_ratio": best["xsearch trial"] / best["plain model.fit"],
        "goal_ratio": GOAL_RATIO,
        "trained_images_per_second": trained,
        "pipeline": pipeline,
    }
    _print(report)
    write_json(args.json, report)
    return report


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=16, help="digits resized to this side")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--middle-repeats", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--data-dir", help="downsampled-ImageNet npz files to train on instead of digits"
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="auto (default): mixed_bfloat16 on a GPU, float32 on a CPU",
    )
    parser.add_argument("--repeats", type=int, default=2, help="runs of each variant (best counts)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.epochs < 1:
        parser.error("--repeats and --epochs must be >= 1.")
    return args


def _print(report: dict[str, Any]) -> None:
    env = report["environment"]
    print(
        f"{report['dataset']} {report['image_size']}x{report['image_size']}, {report['train_images']} training "
        f"images, {report['epochs']} epochs, batch {report['batch_size']}, config {report['config']}, "
        f"{report['precision']}, {env['backend']} on {env['device']}"
    )
    rows = [[name, *times, min(times)] for name, times in report["train_time_s"].items()]
    runs = [f"run {k + 1} s" for k in range(report["repeats"])]
    print(table(["variant", *runs, "best s"], rows))
    print(
        f"overhead ratio (trial / plain fit): {report['overhead_ratio']:.3f}x (goal <= {report['goal_ratio']:.2f}x)"
    )
    print()
    rows = [["trained (xsearch trial)", report["trained_images_per_second"], "-"]]
    rows += [
        [
            f"served by one thread, augment={'yes' if p['augment'] else 'no'}",
            p["served_images_per_second"],
            f"{p['served_over_trained']:.1f}x",
        ]
        for p in report["pipeline"]
    ]
    print(table(["images/s", "rate", "served / trained"], rows))


if __name__ == "__main__":
    main()
