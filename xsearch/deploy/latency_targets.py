"""Latency where the model will run: the host CPU, LiteRT (XNNPACK) and ONNX Runtime, or a remote latency server.

``train-device`` is the in-process probe (`xsearch.model.device_latency`). The local CPU targets are timed in a child
process with a stated thread count, so that a training worker's own threads and accelerator do not distort them:
``cpu`` runs the Keras model there (its backend, on the CPU), ``litert-cpu`` and ``onnxruntime-cpu`` run the model
converted by Keras' exporters (`xsearch.deploy.runtimes`). ``remote`` sends the converted model to
``xsearch latency-server`` (`xsearch.deploy.latency_server`) with its client (`xsearch.deploy.latency_client`). A
design that does not convert, or whose timing fails, records the reason instead of figures.

Run as ``python -m xsearch.deploy.latency_targets`` it is that child: jobs as JSON on stdin, results on stdout.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:  # the target names are read by study files' checks, which load no backend
    import keras

TRAIN_DEVICE: Final = "train-device"
TARGETS: Final = (TRAIN_DEVICE, "cpu", "litert-cpu", "onnxruntime-cpu", "remote")
_LOCAL_FORMATS: Final = {"litert-cpu": "tflite", "onnxruntime-cpu": "onnx"}
_CHILD_TIMEOUT_S: Final = 600.0


_NEEDS: Final = {
    "litert-cpu": ("ai_edge_litert",),
    "onnxruntime-cpu": ("onnxruntime", "tf2onnx", "onnx"),
}
"""What each local target imports; the exporters need TensorFlow too (Keras converts through it on every backend)."""


def check_target_runtimes(targets: tuple[str, ...], remote_format: str = "tflite") -> None:
    """Raise ValueError naming a target whose runtime or exporter is not installed here (before any trial runs)."""
    for target in targets:
        needs = list(_NEEDS.get(target, ()))
        if target in _LOCAL_FORMATS or target == "remote":
            needs.append("tensorflow")
        if target == "remote" and remote_format == "onnx":
            needs += ["tf2onnx", "onnx"]
        missing = [module for module in needs if importlib.util.find_spec(module) is None]
        if missing:
            raise ValueError(
                f"the latency target {target!r} needs {', '.join(missing)}, which is not installed here: "
                "pip install 'xsearch[runtimes]' (and tensorflow where Keras runs on another backend)."
            )


@dataclasses.dataclass(frozen=True)
class TargetSettings:
    """How the targets time a design: batch, CPU threads, calls, and the remote server."""

    batch_size: int = 1
    threads: int = 1
    warmup: int = 10
    repeats: int = 30
    remote_url: str | None = None
    remote_format: str = "tflite"
    remote_token: str | None = None


def measure_targets(
    model: keras.Model, targets: tuple[str, ...], settings: TargetSettings
) -> dict[str, dict[str, Any]]:
    """Each target's latency of ``model`` (``train-device`` is not among them): figures, runtime, version, threads,
    batch and conversion seconds, or ``error`` with the reason the design could not be timed there."""
    from xsearch.deploy.runtimes import ConversionError

    unknown = [t for t in targets if t not in TARGETS or t == TRAIN_DEVICE]
    if unknown:
        raise ValueError(f"unknown latency targets {unknown}; valid: {', '.join(TARGETS[1:])}.")
    results: dict[str, dict[str, Any]] = {}
    jobs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="xsearch-latency-") as folder:
        for target in targets:
            base = {
                "target": target,
                "threads": settings.threads,
                "batch_size": settings.batch_size,
            }
            fmt = (
                "keras"
                if target == "cpu"
                else settings.remote_format
                if target == "remote"
                else _LOCAL_FORMATS[target]
            )
            path = Path(folder) / f"{target}.{fmt}"
            try:
                convert_s = _write(model, fmt, path)
            except ConversionError as error:
                results[target] = {**base, "error": str(error)}
                continue
            if target == "remote":
                results[target] = {**base, **_remote(path, fmt, settings), "convert_s": convert_s}
            else:
                results[target] = {**base, "convert_s": convert_s}
                jobs.append({"target": target, "path": str(path), "format": fmt})
        for target, timed in _time_in_child(jobs, settings).items():
            results[target].update(timed)
    return {target: results[target] for target in targets}


def _write(model: keras.Model, fmt: str, path: Path) -> float | None:
    """The model file a target times; conversion seconds (``None`` for the Keras file, which is not a conversion)."""
    from xsearch.deploy.runtimes import convert

    if fmt == "keras":
        model.save(path)
        return None
    return convert(model, fmt, path)


def _remote(path: Path, fmt: str, settings: TargetSettings) -> dict[str, Any]:
    from xsearch.deploy.latency_client import RemoteLatencyError, measure_remote

    if settings.remote_url is None:
        raise ValueError("the remote latency target needs [latency] remote_url.")
    try:
        return measure_remote(
            settings.remote_url,
            path,
            fmt,
            settings.batch_size,
            settings.threads,
            settings.repeats,
            settings.remote_token,
        )
    except RemoteLatencyError as error:
        return {"error": str(error)}


def child_environment(threads: int) -> dict[str, str]:
    """The environment of a timing process: this one's, on the CPU only, with ``threads`` compute threads."""
    return {
        **os.environ,
        "CUDA_VISIBLE_DEVICES": "",
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "OMP_NUM_THREADS": str(threads),
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": "1",
        "XLA_FLAGS": f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen={str(threads > 1).lower()}",
    }


def _time_in_child(
    jobs: list[dict[str, Any]], settings: TargetSettings
) -> dict[str, dict[str, Any]]:
    """Time the jobs' files in one child process on the CPU with ``settings.threads`` threads."""
    if not jobs:
        return {}
    env = child_environment(settings.threads)
    request = json.dumps({"jobs": jobs, "settings": dataclasses.asdict(settings)})
    try:
        done = subprocess.run(
            [sys.executable, "-m", "xsearch.deploy.latency_targets"],
            input=request,
            env=env,
            capture_output=True,
            text=True,
            timeout=_CHILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return {
            job["target"]: {"error": f"timing took over {_CHILD_TIMEOUT_S:.0f} s"} for job in jobs
        }
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return {
            job["target"]: {
                "error": f"the timing process failed (exit {done.returncode}): {reason}"
            }
            for job in jobs
        }
    timed: dict[str, dict[str, Any]] = json.loads(lines[-1])
    return timed


def _child_time(job: dict[str, Any], settings: TargetSettings) -> dict[str, Any]:
    """In the child: one job's timing, or its error."""
    from xsearch.deploy.runtimes import runtime_version, time_model_file

    path, fmt = Path(job["path"]), job["format"]
    try:
        if fmt == "keras":
            return _time_keras(path, settings)
        stats = time_model_file(
            path, fmt, settings.threads, settings.batch_size, settings.warmup, settings.repeats
        )
        return {
            "runtime": {"tflite": "litert", "onnx": "onnxruntime"}[fmt],
            "runtime_version": runtime_version(fmt),
            **stats.to_dict(),
        }
    except Exception as error:  # the design's failure in that runtime, recorded as its reason
        return {"error": f"{type(error).__name__}: {error}"[:500]}


def limit_backend_threads(threads: int) -> None:
    """In a timing process: TensorFlow's compute threads to ``threads`` (JAX's follow `child_environment`)."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)


def _time_keras(path: Path, settings: TargetSettings) -> dict[str, Any]:
    import keras

    from xsearch.model.device_latency import measure_latency

    limit_backend_threads(settings.threads)
    latency = measure_latency(
        keras.saving.load_model(path), settings.batch_size, settings.warmup, settings.repeats
    )
    return {
        "runtime": f"keras/{latency['backend']}",
        "runtime_version": keras.__version__,
        "median_ms": latency["latency_ms"],
        "p90_ms": latency["latency_p90_ms"],
        "cv": latency["latency_cv"],
        "repeats": latency["repeats"],
        "overhead_ms": latency["overhead_ms"],
    }


def _child_main() -> None:
    request = json.loads(sys.stdin.read())
    settings = TargetSettings(**request["settings"])
    results = {job["target"]: _child_time(job, settings) for job in request["jobs"]}
    print(json.dumps(results))


if __name__ == "__main__":
    _child_main()
