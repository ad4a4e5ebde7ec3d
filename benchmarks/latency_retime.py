"""Each design of a bench table timed again as the latency targets time a design, and the true front under it.

::

    python -m benchmarks.latency_retime              # the digits table -> results/digits_latency_retimed.csv, .json
    python -m benchmarks.latency_retime --retimed-table /tmp/retimed.csv   # also the table with those latencies
    python -m benchmarks.latency_retime --table benchmarks/xception_bench_fm.csv --study xception-bench-fm \\
        --out benchmarks/results/fm_latency_retimed.csv

A table's ``latency_ms`` was timed inside each trial's process, beside the build's training on a busy machine
(`benchmarks.latency_noise`: on the digits table a design's rows differ by a median of 33 %). Here every design is
built again as its trial built it (the study's image size, ``--classes``, the input normalisation) and timed in one
child process on the CPU with a stated thread count (``--threads``), in the environment the latency targets give
theirs (`xsearch.deploy.latency_targets.child_environment`, `limit_backend_threads`), at the study's
``latency_batch``. A design's repeats double, from ``--repeats``, until its timings' coefficient of variation is
under ``--cv`` or they reach ``--max-repeats`` (then the row says so). The CSV is written as designs are timed,
and a run resumes from it.

Then the true front that the replays score against (each design's mean over its rows) is compared with the front
when each design's latency is its retimed median: the designs both keep, and those each has alone (``.json``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.latency_noise import front_designs
from benchmarks.replay import BenchTable, objective_metrics
from benchmarks.xception_bench import design_key
from xsearch.common.atomic import write_atomic
from xsearch.common.resources import resolve
from xsearch.deploy.latency_targets import child_environment, limit_backend_threads
from xsearch.study.record import TrialAttr
from xsearch.study.spec import StudySpec, load_study_spec

HERE = Path(__file__).parent
LATENCY = TrialAttr.LATENCY_MS
COLUMNS = [
    "design",
    "latency_ms",
    "latency_p90_ms",
    "cv",
    "repeats",
    "attempts",
    "settled",
    "backend",
    "threads",
]


def retime(
    table: BenchTable,
    spec: StudySpec,
    classes: int,
    out: Path,
    threads: int,
    repeats: int,
    max_repeats: int,
    cv: float,
) -> pd.DataFrame:
    """Time every design of ``table`` not yet in ``out`` in one child process, appending each to ``out``; all rows."""
    done = pd.read_csv(out) if out.exists() else pd.DataFrame(columns=COLUMNS)
    todo = [key for key in table.designs if key not in set(done["design"])]
    if todo:
        request = {
            "designs": todo,
            "study": spec.to_dict(),
            "classes": classes,
            "threads": threads,
            "repeats": repeats,
            "max_repeats": max_repeats,
            "cv": cv,
        }
        child = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.latency_retime", "--child"],
            env=child_environment(threads),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        child.stdin.write(json.dumps(request))
        child.stdin.close()
        for line in child.stdout:
            row = json.loads(line) | {"threads": threads}
            done = (
                pd.concat([done, pd.DataFrame([row])], ignore_index=True)
                if len(done)
                else pd.DataFrame([row])
            )
            write_atomic(out, done[COLUMNS].to_csv(index=False, float_format="%.5g"))
            print(
                f"latency_retime: {len(done)}/{len(table.designs)} designs, cv {row['cv']:.3f} after "
                f"{row['repeats']} calls",
                file=sys.stderr,
                flush=True,
            )
        if child.wait() != 0:
            raise SystemExit(
                f"latency_retime: the timing process failed (exit {child.returncode}); {out} keeps what it timed."
            )
    return pd.read_csv(out)  # as written (rounded), whether timed now or before


def compare_fronts(table: BenchTable, spec: StudySpec, retimed: pd.DataFrame) -> dict[str, Any]:
    """The true front (the table's mean latency) against the front with each design's retimed latency."""
    metrics, directions = objective_metrics(spec)
    truth = table.truth(metrics)
    latency = retimed.set_index("design")["latency_ms"].reindex(truth.index)
    true_front = front_designs(truth, directions)
    retimed_front = front_designs(
        truth.assign(**{LATENCY: latency.to_numpy(dtype=float)}), directions
    )
    drift = (latency / truth[LATENCY]).describe(percentiles=[0.1, 0.5, 0.9])
    return {
        "designs": len(truth),
        "settled": int(retimed["settled"].sum()),
        "cv_median": float(retimed["cv"].median()),
        "cv_max": float(retimed["cv"].max()),
        "retimed_over_table_latency": {
            k: float(drift[k]) for k in ("min", "10%", "50%", "90%", "max")
        },
        "true_front": len(true_front),
        "retimed_front": len(retimed_front),
        "kept": len(true_front & retimed_front),
        "only_true": sorted(true_front - retimed_front),
        "only_retimed": sorted(retimed_front - true_front),
    }


def retimed_table(frame: pd.DataFrame, retimed: pd.DataFrame) -> pd.DataFrame:
    """The table with every row's latency replaced by its design's retimed median (for the replays)."""
    latency = retimed.set_index("design")["latency_ms"]
    return frame.assign(
        **{LATENCY: [latency.get(design_key(row), float("nan")) for _, row in frame.iterrows()]}
    )


def _child() -> None:
    """In the child: build and time each design of the request, one JSON line per design as it is timed."""
    import numpy as np

    from xsearch.model.builder import build_model
    from xsearch.model.config import XceptionConfig
    from xsearch.model.device_latency import measure_latency
    from xsearch.study.fit import with_normalization

    request = json.loads(sys.stdin.read())
    limit_backend_threads(request["threads"])
    spec = StudySpec.from_dict(request["study"])
    size, classes = spec.data.image_size, request["classes"]
    for design in request["designs"]:
        config = XceptionConfig.from_json(design)
        core = build_model(config, (size, size, 3), classes, bn_momentum=spec.training.bn_momentum)
        model = with_normalization(core, np.zeros(3, "float32"), np.ones(3, "float32"))
        repeats, attempts = request["repeats"], 0
        while True:
            attempts += 1
            latency = measure_latency(
                model, batch_size=spec.latency_batch, warmup=10, repeats=repeats
            )
            if latency["latency_cv"] < request["cv"] or repeats * 2 > request["max_repeats"]:
                break
            repeats *= 2
        print(
            json.dumps(
                {
                    "design": design,
                    "latency_ms": latency["latency_ms"],
                    "latency_p90_ms": latency["latency_p90_ms"],
                    "cv": latency["latency_cv"],
                    "repeats": repeats,
                    "attempts": attempts,
                    "settled": bool(latency["latency_cv"] < request["cv"]),
                    "backend": latency["backend"],
                }
            ),
            flush=True,
        )
        del model, core


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.latency_retime", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--table", type=Path, default=HERE / "xception_bench.csv")
    parser.add_argument(
        "--study", default="xception-bench", help="the bench study the table was made with"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "digits_latency_retimed.csv")
    parser.add_argument(
        "--classes", type=int, default=10, help="the data set's classes (default 10)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads of the timing process (default 1)"
    )
    parser.add_argument("--repeats", type=int, default=30, help="timed calls at first (default 30)")
    parser.add_argument(
        "--max-repeats", type=int, default=960, help="most timed calls (default 960)"
    )
    parser.add_argument(
        "--cv", type=float, default=0.05, help="coefficient of variation to reach (default 0.05)"
    )
    parser.add_argument(
        "--retimed-table", type=Path, help="also write the table with the retimed latencies here"
    )
    args = parser.parse_args(argv)
    if args.child:
        _child()
        return 0
    spec = load_study_spec(resolve("studies", args.study))
    frame = pd.read_csv(args.table)
    table = BenchTable.from_frame(frame)
    summary_path = args.out.with_suffix(".json")
    timed_before = len(pd.read_csv(args.out)) if args.out.exists() else 0
    provenance = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(
            ["python -m benchmarks.latency_retime", *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": {
            "cpu_count": os.cpu_count(),
            "cores_used": sorted(os.sched_getaffinity(0)),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    retimed = retime(
        table, spec, args.classes, args.out, args.threads, args.repeats, args.max_repeats, args.cv
    )
    if len(retimed) == timed_before and summary_path.exists():  # nothing timed: keep the timing's
        earlier = json.loads(summary_path.read_text())
        provenance = {key: earlier[key] for key in provenance if key in earlier}
    summary = {
        "table": str(args.table),
        "study": args.study,
        **provenance,
        **compare_fronts(table, spec, retimed),
    }
    write_atomic(summary_path, json.dumps(summary, indent=2))
    if args.retimed_table:
        write_atomic(args.retimed_table, retimed_table(frame, retimed).to_csv(index=False))
    print(
        json.dumps(
            {k: v for k, v in summary.items() if k not in ("only_true", "only_retimed")}, indent=2
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
