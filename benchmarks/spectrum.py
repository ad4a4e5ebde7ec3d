"""Latency and training throughput against segment count at fixed width: where MACs and speed disagree.

Usage: python -m benchmarks.spectrum [--small] [--image-size 299] [--width 1.0] [--middle-repeats 8]
                                     [--segments 1 2 4 8 16 32 depthwise] [--batch-size 32] [--steps 20]
                                     [--precision float32|mixed_float16|mixed_bfloat16] [--json out.json]

Each point is the paper's Xception with ``segments`` channel groups in every spatial conv (1 = regular
conv, ``depthwise`` = the paper's choice; channel counts are rounded per segment count, see the
README). Ratios are relative to the first point: where MACs fall faster than time, the cheaper
convolutions run at a lower fraction of the device's speed.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import keras

from benchmarks.throughput import (
    NUM_CLASSES,
    PRECISIONS,
    environment,
    keras_steps,
    measure_alternately,
    table,
    write_json,
)
from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.costs import model_costs
from xsearch.model.device_latency import measure_latency


def measure_point(
    config: XceptionConfig, image_size: int, batch_size: int, steps: int, precision: str = "float32"
) -> dict[str, Any]:
    """Params, MACs, latency at batch 1 and training images/s of one design in ``precision``."""
    keras.backend.clear_session()  # also resets the dtype policy
    keras.config.set_dtype_policy(precision)
    model = build_model(config, (image_size, image_size, 3), NUM_CLASSES)
    costs = model_costs(model)
    latency = measure_latency(model, batch_size=1)
    name = f"segments={config.segments}"
    rates = measure_alternately(
        {name: {"train": keras_steps(model, batch_size)["train"]}}, batch_size, steps
    )[name]
    return {
        "segments": config.segments,
        "params": costs["params"],
        "macs": costs["macs"],
        "latency_ms": latency["latency_ms"],
        **rates,
        "train_flops_per_second": 3 * costs["flops"] * rates["train_images_per_second"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse(argv)
    points = []
    for segments in args.segments:
        config = XceptionConfig(
            middle_repeats=args.middle_repeats, width=args.width, segments=segments
        )
        point = measure_point(config, args.image_size, args.batch_size, args.steps, args.precision)
        points.append(point)
        print(
            f"segments={segments}: {point['params']:,} params, {point['macs'] / 1e6:,.0f} MMACs, "
            f"latency {point['latency_ms']:.2f} ms, train {point['train_images_per_second']:,.0f} img/s",
            file=sys.stderr,
            flush=True,
        )  # a capped run keeps the points it measured
    first = points[0]
    for point in points:
        point["macs_ratio"] = point["macs"] / first["macs"]
        point["latency_ratio"] = point["latency_ms"] / first["latency_ms"]
        point["train_time_ratio"] = (
            first["train_images_per_second"] / point["train_images_per_second"]
        )
    report = {
        "benchmark": "spectrum",
        "environment": environment(),
        "image_size": args.image_size,
        "width": args.width,
        "middle_repeats": args.middle_repeats,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "points": points,
    }
    _print(report)
    write_json(args.json, report)
    return report


def _segments(text: str) -> int | str:
    if text == "depthwise":
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(
        f"a segment count is an integer >= 1 or 'depthwise'; received {text!r}."
    )


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--small",
        action="store_true",
        help="CPU size: 32x32 images, width 0.25, 1 middle module, batch 16, 3 steps",
    )
    parser.add_argument("--image-size", type=int, help="default 299 (32 with --small)")
    parser.add_argument("--width", type=float, help="default 1.0 (0.25 with --small)")
    parser.add_argument("--middle-repeats", type=int, help="default 8 (1 with --small)")
    parser.add_argument("--batch-size", type=int, help="default 32 (16 with --small)")
    parser.add_argument(
        "--steps", type=int, help="timed steps per measurement; default 20 (3 with --small)"
    )
    parser.add_argument(
        "--segments", type=_segments, nargs="+", default=[1, 2, 4, 8, 16, 32, "depthwise"]
    )
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    defaults = (32, 0.25, 1, 16, 3) if args.small else (299, 1.0, 8, 32, 20)
    for key, default in zip(
        ("image_size", "width", "middle_repeats", "batch_size", "steps"), defaults
    ):
        if getattr(args, key) is None:
            setattr(args, key, default)
    if args.steps < 1:
        parser.error("--steps must be >= 1.")
    return args


def _print(report: dict[str, Any]) -> None:
    env = report["environment"]
    print(
        f"Segment spectrum at width {report['width']}, {report['middle_repeats']} middle modules, "
        f"{report['image_size']}x{report['image_size']}, training batch {report['batch_size']}, "
        f"{env['precision']}, {env['backend']} on {env['device']}"
    )
    headers = [
        "segments",
        "params",
        "MMACs",
        "MACs x",
        "latency ms",
        "latency x",
        "train img/s",
        "train time x",
        "train GFLOP/s",
    ]
    rows = [
        [
            p["segments"],
            p["params"],
            p["macs"] / 1e6,
            f"{p['macs_ratio']:.2f}",
            p["latency_ms"],
            f"{p['latency_ratio']:.2f}",
            p["train_images_per_second"],
            f"{p['train_time_ratio']:.2f}",
            p["train_flops_per_second"] / 1e9,
        ]
        for p in report["points"]
    ]
    print(table(headers, rows))
    print("x: relative to the first row; train GFLOP/s counts 3x forward FLOPs per image.")


if __name__ == "__main__":
    main()
