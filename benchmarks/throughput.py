"""Training and inference images/s of the paper-point Xception: xsearch vs Keras Applications (vs timm).

Usage: python -m benchmarks.throughput [--small] [--image-size 299] [--batch-size 32] [--steps 20] [--rounds 2]
                                       [--precision float32|mixed_float16|mixed_bfloat16] [--json out.json]

Both Keras models run on the current Keras backend with the same batch, precision, optimizer (Adam)
and compile settings; rates count the fastest timed step, and the first call of each step function
(tracing and compilation) is reported as compile time and left out of the rates. Model FLOP
utilisation (MFU) is the achieved FLOP/s (forward FLOPs per image from `xsearch.model.costs.model_costs`,
x3 for a training image) over the matmul FLOP/s measured on the same device and precision. timm's
``legacy_xception`` (PyTorch, channels-last, autocast, ``torch.compile``) is added when torch and
timm are importable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # leave GPU memory to torch
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import keras
import numpy as np

from xsearch.model.builder import MIN_INPUT_SIZE, build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.costs import model_costs
from xsearch.model.device import jit_compile_setting, on_accelerator, runtime_info

NUM_CLASSES = 1000
KERAS_APPLICATIONS_MIN_SIZE = 71
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    cells = [headers, *([_cell(value) for value in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(
            [row[0].ljust(widths[0]), *(text.rjust(w) for text, w in zip(row[1:], widths[1:]))]
        )
        for row in cells
    )


def write_json(path: str | None, report: dict[str, Any]) -> None:
    if path:
        with open(path, "w") as file:
            json.dump(report, file, indent=2)


def environment() -> dict[str, Any]:
    """Backend, library versions, device and precision, and the host's CPU count."""
    return {**runtime_info(), "cpu_count": os.cpu_count()}


def compile_for_benchmark(model: keras.Model) -> None:
    """Adam, sparse categorical cross-entropy, no metrics, xsearch's jit setting (as in a trial)."""
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(),
        jit_compile=jit_compile_setting(),
    )


def random_batch(model: keras.Model, batch_size: int) -> tuple[Any, Any]:
    """One random batch, already on the device (as timm's is), so no step pays a host-to-device copy."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch_size, *model.input_shape[1:]), dtype=np.float32)
    y = rng.integers(0, NUM_CLASSES, batch_size).astype(np.int32)
    return keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)


Steps = dict[str, Callable[[], Any]]
"""A model's ``train`` and ``inference`` step functions, each returning once its work is done."""


def keras_steps(model: keras.Model, batch_size: int) -> Steps:
    """Training and inference steps of a Keras model on one random batch."""
    compile_for_benchmark(model)
    x, y = random_batch(model, batch_size)
    return {
        "train": lambda: model.train_on_batch(x, y),
        "inference": lambda: model.predict_on_batch(x),
    }


def measure_alternately(
    models: dict[str, Steps], batch_size: int, steps: int, rounds: int = 1
) -> dict[str, dict]:
    """Images/s and compile seconds per model and phase; the models take turns for ``rounds`` rounds.

    Each phase's first call (tracing and compilation) is timed apart; its rate is from the fastest
    step over all rounds, so that a burst of load from other processes hits every model alike.
    """
    first: dict[str, dict[str, float]] = {name: {} for name in models}
    for name, phases in models.items():
        for phase, step in phases.items():
            first[name][phase] = _seconds(step)
            print(
                f"{name} {phase}: first step {first[name][phase]:.1f} s",
                file=sys.stderr,
                flush=True,
            )
    best = {name: {phase: float("inf") for phase in phases} for name, phases in models.items()}
    for _ in range(rounds):
        for name, phases in models.items():
            for phase, step in phases.items():
                best[name][phase] = min(best[name][phase], *(_seconds(step) for _ in range(steps)))
    results: dict[str, dict] = {name: {} for name in models}
    for name, phases in models.items():
        for phase in phases:
            results[name][f"{phase}_images_per_second"] = batch_size / best[name][phase]
            results[name][f"{phase}_compile_s"] = max(0.0, first[name][phase] - best[name][phase])
    return results


def _seconds(step: Callable[[], Any]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def matmul_flops_per_second(dtype: str, size: int, repeats: int = 10, trials: int = 5) -> float:
    """Best FLOP/s over ``trials`` runs of ``repeats`` back-to-back (size x size) matmuls in ``dtype``."""
    a = keras.random.normal((size, size), dtype=dtype, seed=1)
    b = keras.random.normal((size, size), dtype=dtype, seed=2)

    def run() -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            product = keras.ops.matmul(a, b)
        keras.ops.convert_to_numpy(keras.ops.sum(product))
        return time.perf_counter() - start

    run()  # warm-up
    return 2.0 * size**3 * repeats / min(run() for _ in range(trials))


def timm_steps(image_size: int, batch_size: int, precision: str) -> tuple[Steps, int]:
    """Steps of timm's ``legacy_xception`` (channels-last, autocast, ``torch.compile``), and its params."""
    import timm
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    amp_dtype = {"mixed_float16": torch.float16, "mixed_bfloat16": torch.bfloat16}.get(precision)
    model = timm.create_model("legacy_xception", num_classes=NUM_CLASSES)
    model = model.to(device, memory_format=torch.channels_last)
    compiled = torch.compile(model)
    optimizer = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randn(batch_size, 3, image_size, image_size, device=device).to(
        memory_format=torch.channels_last
    )
    y = torch.randint(0, NUM_CLASSES, (batch_size,), device=device)

    def autocast() -> Any:
        return torch.autocast(
            device, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
        )

    def synchronize() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def train() -> None:
        model.train()
        with autocast():
            loss = torch.nn.functional.cross_entropy(compiled(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        synchronize()

    def inference() -> None:
        model.eval()
        with torch.inference_mode(), autocast():
            compiled(x)
        synchronize()

    return {"train": train, "inference": inference}, sum(p.numel() for p in model.parameters())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse(argv)
    keras.config.set_dtype_policy(args.precision)
    compute_dtype = keras.config.dtype_policy().compute_dtype
    matmul_size = 8192 if on_accelerator() else 1024
    peak = matmul_flops_per_second(compute_dtype, matmul_size)
    shape = (args.image_size, args.image_size, 3)
    models = {"xsearch": build_model(XceptionConfig.paper(), shape, NUM_CLASSES)}
    notes = []
    if args.image_size >= KERAS_APPLICATIONS_MIN_SIZE:
        models["keras.applications"] = keras.applications.Xception(weights=None, input_shape=shape)
    else:
        notes.append(
            f"keras.applications row skipped: keras.applications.Xception needs images of at least "
            f"{KERAS_APPLICATIONS_MIN_SIZE}x{KERAS_APPLICATIONS_MIN_SIZE}"
        )
    steps = {name: keras_steps(model, args.batch_size) for name, model in models.items()}
    rows = [
        {
            "model": name,
            "framework": f"keras/{keras.backend.backend()}",
            "params": model.count_params(),
            "forward_flops": model_costs(model)["flops"],
        }
        for name, model in models.items()
    ]
    try:
        steps["timm legacy_xception"], timm_params = timm_steps(
            args.image_size, args.batch_size, args.precision
        )
        rows.append(
            {
                "model": "timm legacy_xception",
                "framework": "torch",
                "params": timm_params,
                "forward_flops": rows[0]["forward_flops"],
            }
        )
    except ImportError as error:
        notes.append(f"timm row skipped: {error} (install torch and timm to compare with PyTorch)")
    rates = measure_alternately(steps, args.batch_size, args.steps, args.rounds)
    for row in rows:
        row.update(rates[row["model"]])
    for row in rows:
        row["train_mfu"] = 3 * row["forward_flops"] * row["train_images_per_second"] / peak
        row["inference_mfu"] = row["forward_flops"] * row["inference_images_per_second"] / peak
    report = {
        "benchmark": "throughput",
        "environment": environment(),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "steps": args.steps,
        "rounds": args.rounds,
        "precision": args.precision,
        "matmul_size": matmul_size,
        "matmul_flops_per_second": peak,
        "rows": rows,
        "notes": notes,
    }
    _print(report)
    write_json(args.json, report)
    return report


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--small", action="store_true", help="CPU size: 71x71 images, batch 8, 5 steps"
    )
    parser.add_argument("--image-size", type=int, help="default 299 (71 with --small)")
    parser.add_argument("--batch-size", type=int, help="default 32 (8 with --small)")
    parser.add_argument(
        "--steps", type=int, help="timed steps per model and round; default 20 (5 with --small)"
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds of steps, the models taking turns"
    )
    parser.add_argument("--precision", choices=PRECISIONS, default="float32")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    defaults = (71, 8, 5) if args.small else (299, 32, 20)
    for key, default in zip(("image_size", "batch_size", "steps"), defaults):
        if getattr(args, key) is None:
            setattr(args, key, default)
    if args.steps < 1 or args.rounds < 1:
        parser.error("--steps and --rounds must be >= 1.")
    if args.image_size < MIN_INPUT_SIZE:
        parser.error(f"--image-size must be >= {MIN_INPUT_SIZE}; received {args.image_size}.")
    return args


def _print(report: dict[str, Any]) -> None:
    env = report["environment"]
    print(
        f"Paper-point Xception, {report['image_size']}x{report['image_size']}, batch {report['batch_size']}, "
        f"{report['precision']}, {env['backend']} {env['backend_version']} on {env['device']}"
    )
    print(
        f"device matmul ({report['matmul_size']}^2): {report['matmul_flops_per_second'] / 1e9:,.0f} GFLOP/s"
    )
    headers = [
        "model",
        "framework",
        "params",
        "GFLOP/img",
        "train img/s",
        "train MFU",
        "compile s",
        "infer img/s",
        "infer MFU",
        "compile s",
    ]
    rows = [
        [
            r["model"],
            r["framework"],
            r["params"],
            r["forward_flops"] / 1e9,
            r["train_images_per_second"],
            f"{r['train_mfu']:.1%}",
            r["train_compile_s"],
            r["inference_images_per_second"],
            f"{r['inference_mfu']:.1%}",
            r["inference_compile_s"],
        ]
        for r in report["rows"]
    ]
    print(table(headers, rows))
    for note in report["notes"]:
        print(f"note: {note}")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


if __name__ == "__main__":
    main()
