"""The `xsearch` command line: parses arguments and calls the library."""

from __future__ import annotations

import argparse
import errno
import importlib.metadata
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from xsearch.common.quiet import quiet_libraries
from xsearch.run.workers import is_worker
from xsearch.study.failures import EXIT_RECYCLE, StudyStopped, WorkerRecycle

if TYPE_CHECKING:
    from xsearch.study.spec import StudySpec

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # as a shell reports Ctrl-C


_FILE_SYSTEM_ERRORS = {
    errno.EROFS: "{path}: the file system is read-only; choose a writable path (e.g. --out).",
    errno.EACCES: "{path}: permission denied; choose a path you may write (e.g. --out).",
    errno.EPERM: "{path}: permission denied; choose a path you may write (e.g. --out).",
    errno.ENOSPC: "no space left on {path}: free some space there or choose another path (e.g. --out).",
    errno.EDQUOT: "disk quota exceeded on {path}: free some space there or choose another path (e.g. --out).",
    errno.EEXIST: "{path} is a file where a folder must go; choose another path (e.g. --out) or move the file.",
    errno.ENOTDIR: "{path}: a file is where a folder must go; choose another path (e.g. --out) or move the file.",
    errno.EISDIR: "{path} is a folder where a file must go; choose another path or remove the folder.",
}
"""Why a file system refuses a write, and what to do: exit status 2 (bad input) rather than a traceback."""


def file_system_message(error: OSError) -> str:
    """One line for a write the file system refused: the path, why, and what to do."""
    assert error.errno is not None
    return _FILE_SYSTEM_ERRORS[error.errno].format(path=error.filename or "the output folder")


def _describe(args: argparse.Namespace) -> None:
    from xsearch.model.config import XceptionConfig
    from xsearch.model.describe import describe

    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such config file.")
        config = XceptionConfig.from_json(path.read_text(), source=str(path))
    else:
        config = XceptionConfig.paper()
    print(
        describe(
            config,
            args.image_size,
            args.classes,
            not args.no_summary,
            args.latency_batch,
            args.step_batch,
        ),
        end="",
    )


def _studies(args: argparse.Namespace) -> None:
    from xsearch.common.resources import shipped_files
    from xsearch.study.spec import load_study_spec

    for name in sorted(shipped_files("studies")):
        print(f"{name:18s} {load_study_spec(name).description}")


def _run(args: argparse.Namespace) -> int:
    """Load the study file, then run it; a ValueError raised after loading starts with the file's path too."""
    from xsearch.common.resources import resolve
    from xsearch.study.spec import load_study_spec

    spec = load_study_spec(args.study)
    try:
        return _run_spec(args, spec)
    except ValueError as error:
        path = str(resolve("studies", args.study))
        if str(error).startswith(path):
            raise
        raise ValueError(f"{path}: {error}") from error


def _run_spec(args: argparse.Namespace, spec: StudySpec) -> int:
    from xsearch.run.workers import (
        SUPERVISOR_PID,
        deadline,
        die_with_supervisor,
        interrupt_on_signals,
        is_worker,
        recycle_after,
        supervise,
    )

    interrupt_on_signals()

    spec = spec.override(
        trials=args.trials,
        timeout=args.timeout,
        seed=args.seed,
        data_dir=args.data_dir,
        max_failures=args.max_failures,
        weights=args.weights,
        precision=args.precision,
        batch_size=args.batch_size,
        tensorboard=args.tensorboard,
        mlflow_uri=args.mlflow,
    )
    out_dir = Path(args.out) if args.out else Path("runs") / spec.name
    # started by a supervisor (which reports when all its workers are done), or by hand
    if is_worker():
        die_with_supervisor()
        from xsearch.run.runner import run_study

        shown = False if SUPERVISOR_PID in os.environ else None  # the supervisor shows the progress
        run_study(
            spec,
            out_dir,
            storage=args.storage,
            progress=shown,
            recycle_after=recycle_after(),
            deadline=deadline(),
        )
        return 0
    passed = args.raw[args.raw.index("run") + 1 :]
    status, study = supervise(
        spec,
        out_dir,
        args.storage,
        passed if "--out" in passed else [*passed, "--out", str(out_dir)],
        args.workers or "1",
    )
    if status:
        return status
    from xsearch.run.runner import finished_count, summary

    print(
        f"study {spec.name!r}: {finished_count(study)}, in {args.storage or out_dir / 'study.journal'}"
    )
    print(f"reports: {out_dir / 'trials.csv'}, {out_dir / 'pareto.csv'}, {out_dir / 'pareto.html'}")
    print(summary(study))
    return 0


def _dashboard(args: argparse.Namespace) -> None:
    from dashboards.server import serve_dashboard
    from xsearch.study.storage import run_storage, study_name_from

    storage = run_storage(args.study, args.storage, args.out)
    serve_dashboard(storage, study_name_from(args.study), args.host, args.port)


def _report(args: argparse.Namespace) -> None:
    from xsearch.results.report import report_summary, write_report
    from xsearch.study.storage import load_study, run_storage, study_name_from

    name = study_name_from(args.study)
    study = load_study(run_storage(args.study, args.storage, args.out), name)
    out_dir = Path(args.out) if args.out else Path("runs") / name
    written = write_report(study, out_dir, args.format)
    print(report_summary(study))
    print(f"report: {written}")


def _repair(args: argparse.Namespace) -> None:
    from xsearch.study.storage import repair_storage, run_storage

    print(repair_storage(args.storage or run_storage(args.study, out=args.out)))


def _latency_server(args: argparse.Namespace) -> None:
    from xsearch.deploy.latency_server import TOKEN_ENV, serve

    variable = args.token_env or TOKEN_ENV
    token = os.environ.get(variable)
    if args.token_env and token is None:
        raise ValueError(
            f"--token-env {variable}: no such environment variable; export it with the token first."
        )
    serve(args.host, args.port, token)


def _storage_proxy(args: argparse.Namespace) -> None:
    from xsearch.study.storage_proxy import serve_proxy

    serve_proxy(args.storage, args.host, args.port)


def _analyze(args: argparse.Namespace) -> None:
    from xsearch.results.analysis_figures import write_analysis
    from xsearch.results.analyze import designs_frame, read_table

    if args.table:
        if args.storage or args.out:
            raise ValueError(
                "--storage and --out locate a study; a --table is analysed on its own."
            )
        table = Path(args.table)
        html = Path(args.html) if args.html else None
        print(write_analysis(read_table(table), f"xsearch analysis: {table.name}", html))
        return
    from xsearch.study.storage import load_study, run_storage, study_name_from

    name = study_name_from(args.study)
    study = load_study(run_storage(args.study, args.storage, args.out), name)
    html = (
        Path(args.html)
        if args.html
        else (Path(args.out) if args.out else Path("runs") / name) / "analysis.html"
    )
    print(write_analysis(designs_frame(study), f"xsearch analysis: {name}", html))


def _export(args: argparse.Namespace) -> None:
    from xsearch.results.trial_export import export_trial
    from xsearch.study.artifacts import artifact_store
    from xsearch.study.storage import load_study, run_storage, study_name_from

    name = study_name_from(args.study)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / name
    study = load_study(run_storage(args.study, args.storage, run_dir), name)
    choice = args.trial if args.trial is not None else args.pick
    result = export_trial(
        study,
        choice,
        Path(args.out),
        artifact_store(run_dir),
        args.force,
        args.retrain,
        weights=args.weights,
        fmt=args.format,
    )
    print(result.message)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xsearch", description="Architecture search over the Xception design space."
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {importlib.metadata.version('xsearch')}"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show the libraries' start-up and INFO logs (TensorFlow, absl, Optuna)",
    )
    parser.add_argument(
        "--backend",
        choices=("tensorflow", "jax"),
        help="Keras backend (default: $KERAS_BACKEND, else tensorflow)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    describe = commands.add_parser("describe", help="show a config's architecture and costs")
    source = describe.add_mutually_exclusive_group()
    source.add_argument("--paper", action="store_true", help="the paper's Xception (default)")
    source.add_argument("--config", metavar="FILE.json", help="a config as JSON")
    describe.add_argument("--image-size", type=int, default=299, help="input side (default 299)")
    describe.add_argument(
        "--classes", type=int, default=1000, help="number of classes (default 1000)"
    )
    describe.add_argument("--no-summary", action="store_true", help="costs only, no layer table")
    describe.add_argument(
        "--latency-batch", type=int, metavar="N", help="also measure latency at batch size N"
    )
    describe.add_argument(
        "--step-batch",
        type=int,
        metavar="N",
        help="also time one training step at batch size N, beside the same design with depthwise convolutions "
        "(grouped convolutions are the slow case on a CPU)",
    )
    describe.set_defaults(handler=_describe)

    studies = commands.add_parser("studies", help="list the studies that ship with xsearch")
    studies.set_defaults(handler=_studies)

    run = commands.add_parser("run", help="run or resume a study")
    run.add_argument(
        "--study", required=True, metavar="NAME|PATH", help="a shipped study or a .toml file"
    )
    run.add_argument("--trials", type=int, help="total number of trials the study should have")
    run.add_argument(
        "--timeout", type=float, metavar="S", help="stop starting trials after S seconds"
    )
    run.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage URL (a database, or grpc://HOST:PORT of an xsearch "
        "storage-proxy) or .journal path (default: runs/<study>/study.journal)",
    )
    run.add_argument("--out", metavar="DIR", help="run folder (default: runs/<study>)")
    run.add_argument("--data-dir", metavar="DIR", help="where the study's data lives")
    run.add_argument("--seed", type=int, help="seed of the sampler, splits and trainings")
    run.add_argument(
        "--weights",
        metavar="imagenet|PATH",
        help="start every trial from these Xception weights (layers whose shapes match)",
    )
    run.add_argument(
        "--batch-size",
        metavar="N|auto",
        help="training batch; auto: the fastest that fits, probed once per study on this device",
    )
    run.add_argument(
        "--precision",
        choices=("auto", "float32", "mixed_bfloat16", "mixed_float16"),
        help="auto (default): mixed_bfloat16 on a GPU, float32 on a CPU",
    )
    run.add_argument(
        "--workers",
        metavar="N|auto",
        help="worker processes on this machine, restarted when they crash (default 1; auto: one per GPU)",
    )
    run.add_argument(
        "--max-failures",
        type=int,
        metavar="K",
        help="stop a worker after K consecutive failures of one kind on this machine (default: never)",
    )
    run.add_argument(
        "--tensorboard",
        action="store_true",
        help="log every trial for TensorBoard in <run folder>/tensorboard (curves, HParams table)",
    )
    run.add_argument(
        "--mlflow",
        metavar="URI",
        help="log the study to MLflow at this tracking URI: one run per study, one nested run per trial",
    )
    run.set_defaults(handler=_run)

    export = commands.add_parser(
        "export",
        help="write a design of a study as a model file (.keras, SavedModel, "
        ".tflite, .onnx) and a model card",
    )
    export.add_argument(
        "--study", required=True, metavar="NAME|PATH", help="the study: its name or its study file"
    )
    chosen = export.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--trial", type=int, metavar="N", help="the trial number")
    chosen.add_argument(
        "--pick", choices=("accuracy", "params", "latency", "knee"), help="a design on the front"
    )
    export.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="where to write the model: FILE.keras, FILE.tflite, FILE.onnx, or a FOLDER for savedmodel",
    )
    export.add_argument(
        "--format",
        choices=("keras", "savedmodel", "tflite", "onnx"),
        default="keras",
        help="keras (default); or a deployment format, converted and checked in its runtime",
    )
    export.add_argument(
        "--force", action="store_true", help="overwrite an existing file (or SavedModel folder)"
    )
    export.add_argument(
        "--retrain", action="store_true", help="retrain when the trial kept no weights"
    )
    export.add_argument(
        "--weights", metavar="imagenet|PATH", help="with --retrain: start from these weights"
    )
    export.add_argument(
        "--storage", metavar="URL", help="the study's storage (default: its run folder)"
    )
    export.add_argument(
        "--run-dir", metavar="DIR", help="the study's run folder (default: runs/<study>)"
    )
    export.set_defaults(handler=_export)

    dashboard = commands.add_parser("dashboard", help="open a study in optuna-dashboard")
    dashboard.add_argument(
        "--study", required=True, metavar="NAME|PATH", help="the study: its name or its study file"
    )
    dashboard.add_argument(
        "--storage", metavar="URL", help="the study's storage (default: its run folder)"
    )
    dashboard.add_argument(
        "--out", metavar="DIR", help="the study's run folder (default: runs/<study>)"
    )
    dashboard.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; the dashboard has no authentication)",
    )
    dashboard.add_argument("--port", type=int, default=8080, help="port to serve on (default 8080)")
    dashboard.set_defaults(handler=_dashboard)

    report = commands.add_parser("report", help="the trials as a table and plots")
    report.add_argument(
        "--study", required=True, metavar="NAME|PATH", help="the study: its name or its study file"
    )
    report.add_argument(
        "--storage", metavar="URL", help="the study's storage (default: its run folder)"
    )
    report.add_argument(
        "--out", metavar="DIR", help="the study's run folder (default: runs/<study>)"
    )
    report.add_argument(
        "--format",
        choices=("csv", "parquet", "html"),
        default="html",
        help="html (default): one page with the plots; csv or parquet: the trials table",
    )
    report.set_defaults(handler=_report)

    repair = commands.add_parser(
        "repair", help="repair a damaged study journal, keeping a copy of it"
    )
    repaired = repair.add_mutually_exclusive_group(required=True)
    repaired.add_argument(
        "--study", metavar="NAME|PATH", help="the study whose run folder holds the journal"
    )
    repaired.add_argument("--storage", metavar="PATH.journal", help="the journal file itself")
    repair.add_argument(
        "--out", metavar="DIR", help="the study's run folder (default: runs/<study>)"
    )
    repair.set_defaults(handler=_repair)

    analyze = commands.add_parser(
        "analyze", help="design-space analysis: error EDFs per axis, the paper's questions"
    )
    analysed = analyze.add_mutually_exclusive_group(required=True)
    analysed.add_argument("--study", metavar="NAME|PATH", help="a study's trained designs")
    analysed.add_argument(
        "--table", metavar="CSV", help="a bench table instead (e.g. benchmarks/xception_bench.csv)"
    )
    analyze.add_argument(
        "--storage", metavar="URL", help="the study's storage (default: its run folder)"
    )
    analyze.add_argument(
        "--out", metavar="DIR", help="the study's run folder (default: runs/<study>)"
    )
    analyze.add_argument(
        "--html",
        metavar="PATH",
        help="write the analysis as one HTML page (default for a study: <run folder>/analysis.html)",
    )
    analyze.set_defaults(handler=_analyze)

    latency_server = commands.add_parser(
        "latency-server", help="time uploaded model files on this machine for remote studies"
    )
    latency_server.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; any other address needs a token)",
    )
    latency_server.add_argument(
        "--port", type=int, default=8765, help="port to serve on (default 8765)"
    )
    latency_server.add_argument(
        "--token-env",
        metavar="VAR",
        help="environment variable holding the token that clients must send "
        "(default: XSEARCH_LATENCY_TOKEN if set)",
    )
    latency_server.set_defaults(handler=_latency_server)

    proxy = commands.add_parser(
        "storage-proxy",
        help="serve a database to many workers through Optuna's gRPC storage proxy "
        "(they pass --storage grpc://HOST:PORT)",
    )
    proxy.add_argument(
        "--storage",
        required=True,
        metavar="URL",
        help="the database: postgresql://..., mysql+pymysql://... or sqlite:///... (tables created if missing)",
    )
    proxy.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; the proxy has no authentication or encryption)",
    )
    proxy.add_argument("--port", type=int, default=13000, help="port to serve on (default 13000)")
    proxy.set_defaults(handler=_storage_proxy)
    return parser


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(raw)
    args.raw = raw
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend  # before anything imports keras
    quiet_libraries(args.verbose)
    try:
        status = args.handler(args) or 0
    except (ValueError, KeyError, FileNotFoundError) as error:
        if args.debug:
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"xsearch: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as error:
        if args.debug or error.errno not in _FILE_SYSTEM_ERRORS:
            raise
        print(f"xsearch: error: {file_system_message(error)}", file=sys.stderr, flush=True)
        if is_worker():  # a worker: its backend may crash in its teardown after a failed write
            # (h5py, a segfault), which its supervisor would restart as a crash
            os._exit(EXIT_BAD_INPUT)
        return EXIT_BAD_INPUT
    except StudyStopped as error:
        print(f"xsearch: stopped: {error}", file=sys.stderr)
        return 1
    except WorkerRecycle:
        return EXIT_RECYCLE
    except KeyboardInterrupt:
        print("xsearch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return status


if __name__ == "__main__":
    sys.exit(main())
