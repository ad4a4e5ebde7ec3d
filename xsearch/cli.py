"""The `xsearch` command line: parses arguments and calls the library."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EXIT_BAD_INPUT = 2


def _describe(args: argparse.Namespace) -> None:
    from xsearch.config import XceptionConfig
    from xsearch.describe import describe

    if args.config:
        path = Path(args.config)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such config file.")
        config = XceptionConfig.from_json(path.read_text(), source=str(path))
    else:
        config = XceptionConfig.paper()
    print(describe(config, args.image_size, args.classes, not args.no_summary, args.latency_batch), end="")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xsearch", description="Architecture search over the Xception design space."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    describe = commands.add_parser("describe", help="show a config's architecture and costs")
    source = describe.add_mutually_exclusive_group()
    source.add_argument("--paper", action="store_true", help="the paper's Xception (default)")
    source.add_argument("--config", metavar="FILE.json", help="a config as JSON")
    describe.add_argument("--image-size", type=int, default=299, help="input side (default 299)")
    describe.add_argument("--classes", type=int, default=1000, help="number of classes (default 1000)")
    describe.add_argument("--no-summary", action="store_true", help="costs only, no layer table")
    describe.add_argument(
        "--latency-batch", type=int, metavar="N", help="also measure latency at batch size N"
    )
    describe.set_defaults(handler=_describe)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (ValueError, KeyError, FileNotFoundError) as error:
        if args.debug:
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"xsearch: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
