"""Latency where the model will run: the noise of each target, and how differently the targets rank designs.

::

    python -m benchmarks.latency_targets noise [--repeats 20] [--image-size 16]
    python -m benchmarks.latency_targets study [--trials 12] [--out runs/latency-targets]

``noise`` measures designs of the ``quickstart`` space (the smallest, the paper point at the space's
widest, and a regular-conv one) ``--repeats`` times on each target, each measurement a median of 30 timed
calls after 10 warm-up calls, and prints per design and target the median of those medians, their p90 and
their coefficient of variation, with the training device's call overhead (an identity model) apart.
``study`` runs the ``quickstart`` study with objectives accuracy, params and ``latency@litert-cpu`` (also
recording ``onnxruntime-cpu`` and ``cpu``), and prints `xsearch.results.latency_analysis`'s table:
per device the designs timed, the noise and Spearman's rank correlation with MACs and with the training
device.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from xsearch.deploy.latency_targets import TargetSettings, measure_targets
from xsearch.deploy.runtimes import convert, time_model_file
from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.costs import model_costs
from xsearch.model.device_latency import measure_latency
from xsearch.results.latency_analysis import latency_frame
from xsearch.run.runner import run_study
from xsearch.study.fit import with_normalization
from xsearch.study.spec import LatencySpec, load_study_spec

DESIGNS = {
    "smallest": XceptionConfig(
        middle_repeats=0, width=0.25, depth_multiplier=1, segments="depthwise", residual=False
    ),
    "paper-wide": XceptionConfig(middle_repeats=2, width=1.0),
    "regular": XceptionConfig(middle_repeats=2, width=0.5, segments=1),
}


def noise(repeats: int, image_size: int) -> pd.DataFrame:
    """Per design and target: median, p90 and cv of ``repeats`` measurements (each a median of 30 calls)."""
    rows = []
    for name, config in DESIGNS.items():
        core = build_model(config, (image_size, image_size, 3), 10)
        model = with_normalization(
            core, np.full(3, 127.5, np.float32), np.full(3, 64.0, np.float32)
        )
        macs = model_costs(core)["macs"]
        device = [measure_latency(model, 1, 10, 30) for _ in range(repeats)]
        series = {"train-device": [m["latency_ms"] for m in device]}
        overhead = statistics.median(m["overhead_ms"] for m in device)
        series["cpu"] = [
            measure_targets(model, ("cpu",), TargetSettings(warmup=10, repeats=30))["cpu"][
                "median_ms"
            ]
            for _ in range(repeats)
        ]
        with tempfile.TemporaryDirectory() as folder:
            for target, fmt in (("litert-cpu", "tflite"), ("onnxruntime-cpu", "onnx")):
                path = Path(folder) / f"model.{fmt}"
                convert(model, fmt, path)
                series[target] = [
                    time_model_file(path, fmt, 1, 1, 10, 30).median_ms for _ in range(repeats)
                ]
        for target, values in series.items():
            rows.append(
                {
                    "design": name,
                    "macs": macs,
                    "target": target,
                    "median_ms": statistics.median(values),
                    "p90_ms": float(np.percentile(values, 90)),
                    "cv": statistics.stdev(values) / statistics.fmean(values),
                    "overhead_ms": overhead if target == "train-device" else None,
                }
            )
        print(pd.DataFrame(rows[-len(series) :]).to_string(index=False), flush=True)
    return pd.DataFrame(rows)


def study(trials: int, out: Path) -> pd.DataFrame:
    """Run the quickstart study scored on LiteRT latency and return the latency table of its designs."""
    base = load_study_spec("quickstart")
    spec = dataclasses.replace(
        base,
        name="quickstart-latency-targets",
        objectives=("accuracy", "params", "latency@litert-cpu"),
        latency=LatencySpec(targets=("onnxruntime-cpu", "cpu")),
        trials=trials,
        timeout=None,
    )
    result = run_study(spec, out, progress=True)
    return latency_frame(result)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=("noise", "study"))
    parser.add_argument(
        "--repeats", type=int, default=20, help="measurements per design and target (noise)"
    )
    parser.add_argument(
        "--image-size", type=int, default=16, help="input side (noise; quickstart's is 16)"
    )
    parser.add_argument("--trials", type=int, default=12, help="trials of the study (study)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/latency-targets"),
        help="the study's run folder (study)",
    )
    args = parser.parse_args(argv)
    table = (
        noise(args.repeats, args.image_size)
        if args.command == "noise"
        else study(args.trials, args.out)
    )
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
