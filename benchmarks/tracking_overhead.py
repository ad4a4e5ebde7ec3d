"""What tracking costs a study: the same run with and without `--tensorboard --mlflow`, side by side.

Usage: python -m benchmarks.tracking_overhead [--study quickstart] [--trials 10] [--repeats 3]
                                              [--out runs/tracking-overhead] [--screenshots DIR] [--json out.json]

Starts a real `mlflow server` on loopback, then runs `xsearch run` on the study ``--repeats`` times each way,
alternating the order (plain then tracked, then tracked then plain, ...) so that a drift in the machine's speed
falls on both. Every run is a fresh run folder with a fixed number of trials and no timeout. Reports each way's
median wall time and their ratio (the goal: at most 1.05), and checks that a tracked run's trials record what the
plain run of the same repeat records: the same states, parameters and attributes, and how far their objective
values differ. With ``--screenshots``, it opens TensorBoard's HParams table and MLflow's run list of the last
tracked run in headless Chromium (Playwright, Debian's chromium) and saves them as PNG files.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna

from benchmarks.mlflow_server import mlflow_server, tensorboard_server
from benchmarks.throughput import environment, write_json
from xsearch.study.storage import open_storage

GOAL_RATIO = 1.05
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def run_once(study: str, trials: int, out: Path, mlflow_uri: str | None) -> float:
    """Wall seconds of one `xsearch run` of ``study`` into ``out`` (tracked when ``mlflow_uri`` is given)."""
    command = [
        sys.executable,
        "-m",
        "xsearch.cli",
        "run",
        "--study",
        study,
        "--trials",
        str(trials),
        "--timeout",
        "1e9",
        "--out",
        str(out),
    ]
    if mlflow_uri:
        command += ["--tensorboard", "--mlflow", mlflow_uri]
    start = time.perf_counter()
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0 or "warning: tracking" in done.stderr:
        raise RuntimeError(f"{' '.join(command)} failed or warned:\n{done.stderr[-3000:]}")
    return seconds


def load_trials(out: Path) -> list[optuna.trial.FrozenTrial]:
    """The trials of the study in run folder ``out``."""
    journal = out / "study.journal"
    storage = open_storage(str(journal), out)
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()


def compare_records(
    plain: list[optuna.trial.FrozenTrial], tracked: list[optuna.trial.FrozenTrial]
) -> dict[str, Any]:
    """How a tracked run's trials differ from a plain run's: counts of differing states, parameters and attribute
    names, and, per objective, the largest relative difference of a trial's value (latency is measured anew in
    every run, so it differs by the machine's timing noise alone)."""
    pairs = [(p, t) for p, t in zip(plain, tracked, strict=False) if p.values and t.values]
    objectives = len(pairs[0][0].values) if pairs else 0
    gaps = [
        max(abs(p.values[i] - t.values[i]) / max(abs(p.values[i]), 1e-12) for p, t in pairs)
        for i in range(objectives)
    ]
    return {
        "trials": [len(plain), len(tracked)],
        "states_differ": sum(p.state != t.state for p, t in zip(plain, tracked, strict=False)),
        "params_differ": sum(p.params != t.params for p, t in zip(plain, tracked, strict=False)),
        "attribute_names_differ": sum(
            set(p.user_attrs) != set(t.user_attrs) for p, t in zip(plain, tracked, strict=False)
        ),
        "largest_relative_gap_per_objective": gaps,
    }


def screenshot(url: str, path: Path, ready: str, clicks: tuple[str, ...] = ()) -> None:
    """A 1400x900 PNG of ``url`` in headless Chromium, once the text ``ready`` shows and each selector of ``clicks``
    (where the page has it) was clicked."""
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url, wait_until="load", timeout=60_000)
        page.get_by_text(ready).first.wait_for(timeout=60_000)
        for selector in clicks:
            try:
                page.locator(selector).first.click(timeout=5_000)
            except Error:
                print(
                    f"tracking-overhead: {url}: nothing to click at {selector!r}; the screenshot is taken without it"
                )
        page.wait_for_timeout(2_000)
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path))
        browser.close()


def take_screenshots(run: Path, mlflow_uri: str, folder: Path) -> list[Path]:
    """TensorBoard's HParams table of ``run``'s trials and MLflow's run list of the study (its parent run opened on
    the trials' runs), as PNGs in ``folder``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("xsearch")
    if experiment is None:
        raise RuntimeError(
            f"MLflow at {mlflow_uri} has no experiment 'xsearch': the tracked runs logged nothing"
        )
    (parent, *_) = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.mlflow.parentRunId IS NULL",
        order_by=["attributes.start_time DESC"],
    )
    shots = [folder / "tensorboard-hparams.png", folder / "mlflow-runs.png"]
    with tensorboard_server(run / "tensorboard") as board:
        screenshot(f"{board}/#hparams", shots[0], ready="trial-0")
    screenshot(
        f"{mlflow_uri}/#/experiments/{experiment.experiment_id}/runs",
        shots[1],
        ready=parent.info.run_name,
        clicks=("button[aria-label='Close']", "[col-id='attributes.`Run Name`'] button"),
    )
    return shots


def measure(
    study: str, trials: int, repeats: int, out: Path, screenshots: Path | None
) -> dict[str, Any]:
    """The side-by-side runs, their wall times and ratio, the record comparison and, optionally, the screenshots."""
    seconds: dict[str, list[float]] = {"plain": [], "tracked": []}
    records = []
    with mlflow_server(out / "mlflow") as (uri, _):
        for repeat in range(repeats):
            order = ("plain", "tracked") if repeat % 2 == 0 else ("tracked", "plain")
            for way in order:
                folder = out / f"{way}-{repeat}"
                seconds[way].append(
                    run_once(study, trials, folder, uri if way == "tracked" else None)
                )
                print(
                    f"tracking-overhead: repeat {repeat} {way}: {seconds[way][-1]:.1f} s",
                    flush=True,
                )
            records.append(
                compare_records(
                    load_trials(out / f"plain-{repeat}"), load_trials(out / f"tracked-{repeat}")
                )
            )
        shots = (
            take_screenshots(out / f"tracked-{repeats - 1}", uri, screenshots)
            if screenshots
            else []
        )
    medians = {way: statistics.median(values) for way, values in seconds.items()}
    ratio = medians["tracked"] / medians["plain"]
    return {
        "study": study,
        "trials": trials,
        "repeats": repeats,
        "seconds": seconds,
        "median_s": medians,
        "ratio": ratio,
        "goal_ratio": GOAL_RATIO,
        "meets_goal": ratio <= GOAL_RATIO,
        "records": records,
        "screenshots": [str(s) for s in shots],
        "environment": environment(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.tracking_overhead", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--study", default="quickstart", help="the study to run (default quickstart)"
    )
    parser.add_argument("--trials", type=int, default=10, help="trials per run (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="runs each way (default 3)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("runs/tracking-overhead"),
        help="a fresh folder for the runs",
    )
    parser.add_argument(
        "--screenshots",
        type=Path,
        help="save TensorBoard's and MLflow's views of the last run here",
    )
    parser.add_argument("--json", type=Path, help="write the result here")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.trials < 1:
        parser.error("--repeats and --trials must be at least 1")
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"--out {args.out} is not empty; give a fresh folder")
    result = measure(args.study, args.trials, args.repeats, args.out, args.screenshots)
    print(
        f"tracking-overhead: {args.study}, {args.trials} trials, {args.repeats} runs each way: plain "
        f"{result['median_s']['plain']:.1f} s, tracked {result['median_s']['tracked']:.1f} s (medians); ratio "
        f"{result['ratio']:.3f} (goal <= {GOAL_RATIO})"
    )
    for repeat, record in enumerate(result["records"]):
        print(f"tracking-overhead: repeat {repeat}: records {record}")
    if args.json:
        write_json(str(args.json), result)
    return 0 if result["meets_goal"] and not math.isnan(result["ratio"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
