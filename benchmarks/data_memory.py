"""Private memory of the data path against the data set's size: the cache build, then a study's supervisor and workers.

Usage: python -m benchmarks.data_memory [--sizes 25000 100000] [--val-images 2000] [--side 64] [--workers 2]
                                        [--epochs 1] [--work DIR] [--json out.json]

For each size N it writes N random side x side training images (and ``--val-images``) in the official
Downsampled-ImageNet npz format (`benchmarks.synthetic_imagenet`, 10,000 images a batch file), then:

1. builds the uint8 cache in a process of its own (`xsearch.study.setup.load_spec_dataset`, as ``xsearch
   run`` would), sampling its memory;
2. runs ``xsearch run --workers W`` on that cache: a grid study of two of the smallest designs, W trials
   (one per worker) of ``--epochs`` epochs over the whole training split, sampling the supervisor's and each
   worker's memory.

Memory is read from ``/proc/PID/status`` every 0.2 s: ``RssAnon`` is the process's private memory (the
goal: the same for every N, within 10 %, and under 1.5 GB); ``RssFile`` is file pages it maps, shared
through the page cache (the cache's arrays, and the libraries' code).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.synthetic_imagenet import write_imagenet_npz
from benchmarks.throughput import environment, table, write_json

ROOT = Path(__file__).resolve().parents[1]
IMAGES_PER_BATCH_FILE = 10_000
SAMPLE_S = 0.2
GOAL_MB = 1536
GOAL_SPREAD = 0.10
FIELDS = ("RssAnon", "RssFile", "VmHWM")
SPACE = """description = "Two of the smallest designs, both quick on a CPU (grouped convolutions are not)."
[axes]
middle_repeats = [0]
width = [0.125]
segments = [1, "depthwise"]
intermediate_activation = ["none"]
residual = [true]
"""
BUILD = (
    "from xsearch.study.setup import load_spec_dataset; from xsearch.study.spec import load_study_spec; "
    "import sys; d = load_spec_dataset(load_study_spec(sys.argv[1])); print(len(d.y_train), len(d.y_val))"
)


def study_toml(data_dir: Path, side: int, workers: int, epochs: int) -> str:
    """A grid study of `SPACE` on the npz folder: one trial per worker, the whole training split each epoch."""
    return (
        "\n".join(
            [
                f"space = {json.dumps(str(data_dir.parent / 'space.toml'))}",
                'objectives = ["accuracy", "params"]',
                'sampler = "grid"',
                "seed_trials = []",
                f"trials = {workers}",
                "seed = 0",
                "[data]",
                'source = "imagenet-npz"',
                f"image_size = {side}",
                f"data_dir = {json.dumps(str(data_dir))}",
                "test_fraction = 0.0",
                "[training]",
                f"epochs = {epochs}",
                "batch_size = 256",
                "augment = true",
                "bn_momentum = 0.9",
            ]
        )
        + "\n"
    )


def memory_mb(pid: int) -> dict[str, float] | None:
    """`FIELDS` of ``/proc/PID/status`` in MB (None once the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return None
    values = {line.split(":")[0]: line.split()[1:] for line in lines}
    return {field: int(values[field][0]) / 1024 for field in FIELDS if field in values}


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


class Sampler:
    """Samples the memory of a process and its children until `stop`; keeps each process's peaks."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peaks: dict[int, dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid in [self.pid, *children(self.pid)]:
                sample = memory_mb(pid)
                if sample:
                    peak = self.peaks.setdefault(pid, {})
                    for field, value in sample.items():
                        peak[field] = max(peak.get(field, 0.0), value)
            self._stop.wait(SAMPLE_S)

    def stop(self) -> dict[int, dict[str, float]]:
        self._stop.set()
        self._thread.join()
        return self.peaks


def run_measured(
    command: list[str], env: dict[str, str]
) -> tuple[float, dict[int, dict[str, float]], int, str]:
    """(seconds, peaks by pid, the command's pid, its output) of a command run to its end."""
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    sampler = Sampler(process.pid)
    output, _ = process.communicate()
    peaks = sampler.stop()
    if process.returncode:
        raise RuntimeError(
            f"{' '.join(command)} exited with {process.returncode}:\n{output[-3000:]}"
        )
    return time.perf_counter() - started, peaks, process.pid, output


def measure(size: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Write the data, build its cache, run the study; the memory of every process."""
    data, run = work / f"npz-{size}", work / f"run-{size}"
    write_imagenet_npz(
        data,
        size,
        args.val_images,
        side=args.side,
        classes=100,
        train_batches=max(1, size // IMAGES_PER_BATCH_FILE),
    )
    study = work / f"study-{size}.toml"
    (work / "space.toml").write_text(SPACE)
    study.write_text(study_toml(data, args.side, args.workers, args.epochs))
    env = {**os.environ, "XSEARCH_CACHE_DIR": str(work / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    build_s, build_peaks, build_pid, _ = run_measured(
        [sys.executable, "-c", BUILD, str(study)], env
    )
    run_s, peaks, supervisor, _ = run_measured(
        [
            sys.executable,
            "-m",
            "xsearch.cli",
            "run",
            "--study",
            str(study),
            "--out",
            str(run),
            "--workers",
            str(args.workers),
        ],
        env,
    )
    workers = [peak for pid, peak in sorted(peaks.items()) if pid != supervisor]
    return {
        "train_images": size,
        "val_images": args.val_images,
        "pixels_mb": size * args.side**2 * 3 / 2**20,
        "build_s": build_s,
        "build": build_peaks[build_pid],
        "run_s": run_s,
        "supervisor": peaks[supervisor],
        "workers": workers,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 100_000])
    parser.add_argument("--val-images", type=int, default=2_000)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--work", type=Path, help="where the data, cache and runs go (default: a temporary folder)"
    )
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="xsearch-data-memory-") as temporary:
        work = args.work or Path(temporary)
        rows = []
        for size in args.sizes:
            rows.append(measure(size, args, work))
            print(
                f"{size:,} images: build {rows[-1]['build_s']:.0f} s, study {rows[-1]['run_s']:.0f} s",
                file=sys.stderr,
            )
    report = {
        "benchmark": "data_memory",
        "environment": environment(),
        "side": args.side,
        "workers": args.workers,
        "epochs": args.epochs,
        "rows": rows,
        "verdict": verdict(rows),
    }
    print(summary(report))
    write_json(args.json, report)
    return report


def verdict(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The largest private memory of each role, and whether it stays under `GOAL_MB` and within
    `GOAL_SPREAD` across sizes."""
    roles = {
        "build": [row["build"]["RssAnon"] for row in rows],
        "supervisor": [row["supervisor"]["RssAnon"] for row in rows],
        "worker": [max(worker["RssAnon"] for worker in row["workers"]) for row in rows],
    }
    spread = {role: max(values) / min(values) - 1 for role, values in roles.items()}
    return {
        "largest_mb": {role: max(values) for role, values in roles.items()},
        "spread": spread,
        "meets_goal": all(
            max(values) < GOAL_MB and spread[role] <= GOAL_SPREAD for role, values in roles.items()
        ),
    }


def summary(report: dict[str, Any]) -> str:
    headers = [
        "train images",
        "pixels MB",
        "build s",
        "build anon MB",
        "build HWM MB",
        "supervisor anon MB",
        "worker anon MB",
        "worker file MB",
        "study s",
    ]
    rows = [
        [
            f"{row['train_images']:,}",
            row["pixels_mb"],
            row["build_s"],
            row["build"]["RssAnon"],
            row["build"]["VmHWM"],
            row["supervisor"]["RssAnon"],
            " / ".join(f"{w['RssAnon']:.0f}" for w in row["workers"]),
            " / ".join(f"{w['RssFile']:.0f}" for w in row["workers"]),
            row["run_s"],
        ]
        for row in report["rows"]
    ]
    result = report["verdict"]
    spread = ", ".join(f"{role} {value:+.1%}" for role, value in result["spread"].items())
    return "\n".join(
        [
            f"Private memory (RssAnon, peak) of the data path, {report['side']}x{report['side']} images, "
            f"{report['workers']} workers, {report['epochs']} epoch(s)",
            table(headers, rows),
            f"largest to smallest size: {spread}; goal (each under {GOAL_MB} MB, within "
            f"{GOAL_SPREAD:.0%}): {'met' if result['meets_goal'] else 'NOT met'}",
        ]
    )


if __name__ == "__main__":
    main()
