"""The docs' figures, drawn by xsearch's own plotly figures and rendered to PNG in headless Chromium (Playwright).

    python docs/scripts/figures.py                     # runs the quickstart first when RUN_DIR has no study
    python docs/scripts/figures.py --run-dir runs/quickstart --out docs/images

- ``quickstart-pareto.png``: the Pareto figure of a `quickstart` run (`xsearch.results.run_reports.pareto_figure`,
  the figure of the run folder's ``pareto.html``); without a study in ``--run-dir``, ``xsearch run --study
  quickstart --out RUN_DIR`` trains one first (a few minutes on 2 CPU cores).
- ``xception-bench-edfs.png``, ``xception-bench-effects.png``: `xsearch analyze --table benchmarks/xception_bench.csv`'s
  error EDFs per axis and its paired effects (`xsearch.results.analysis_figures`).

Plotly draws each figure in the browser (plotly.js inlined, no network) and `Plotly.toImage` returns its PNG, so no
kaleido is needed; the browser is Debian's ``/usr/bin/chromium``.
"""

from __future__ import annotations

import argparse
import base64
import subprocess
import sys
import tempfile
from pathlib import Path

import plotly.graph_objects as go

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BENCH_TABLE = ROOT / "benchmarks" / "xception_bench.csv"
TO_IMAGE = """async ([width, height]) => await Plotly.toImage(document.querySelector('.plotly-graph-div'),
                                                          {format: 'png', width: width, height: height, scale: 2})"""


def render_png(figure: go.Figure, path: Path, width: int, height: int) -> Path:
    """Write ``figure`` as a PNG of ``width`` x ``height`` CSS pixels (at twice the resolution), drawn in Chromium."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        page_path = Path(folder) / "figure.html"
        page_path.write_text(figure.to_html(include_plotlyjs=True, full_html=True))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                page = browser.new_page()
                page.goto(page_path.as_uri())
                page.wait_for_function(
                    "window.Plotly !== undefined && document.querySelector('.main-svg') !== null"
                )
                url = page.evaluate(TO_IMAGE, [width, height])
            finally:
                browser.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(url.split(",", 1)[1]))
    return path


def quickstart_figure(run_dir: Path) -> go.Figure:
    """The Pareto figure of the quickstart study in ``run_dir``, trained first when the folder has none."""
    from xsearch.results.run_reports import pareto_figure
    from xsearch.study.storage import load_study, run_storage

    if not (run_dir / "study.journal").exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "xsearch.cli",
                "run",
                "--study",
                "quickstart",
                "--out",
                str(run_dir),
            ],
            check=True,
        )
    figure = pareto_figure(load_study(run_storage("quickstart", out=run_dir), "quickstart"))
    return figure.update_layout(margin={"t": 70, "b": 50, "l": 60, "r": 20})


def analysis_figures(table: Path) -> dict[str, tuple[go.Figure, int]]:
    """The EDF and paired-effects figures of ``xsearch analyze --table``, with their heights, by file stem."""
    from xsearch.results.analysis_figures import edf_figure, effects_figure
    from xsearch.results.analyze import analyze, read_table

    frame = read_table(table)
    return {
        "xception-bench-edfs": (edf_figure(frame), 900),
        "xception-bench-effects": (effects_figure(analyze(frame)), 560),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Draw the docs' figures into docs/images.")
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=ROOT / "runs" / "quickstart",
        help="a quickstart run folder (trained first when it holds no study)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "images", help="the folder of the PNG files"
    )
    args = parser.parse_args(argv)
    print(
        render_png(quickstart_figure(args.run_dir), args.out / "quickstart-pareto.png", 1000, 420)
    )
    for stem, (figure, height) in analysis_figures(BENCH_TABLE).items():
        print(render_png(figure, args.out / f"{stem}.png", 1000, height))


if __name__ == "__main__":
    main()
