"""`xsearch latency-server`: the remote latency target's server, timing uploaded model files in this machine's runtimes.

A study searches on one machine and ships to another (a CPU server, a phone, an edge board). On the target the user
runs `serve`; a study posts each design, converted by `runtimes.convert`, with the client
(`xsearch.deploy.latency_client.measure_remote`) and records the figures that come back. Protocol (JSON answers,
``Authorization: Bearer <token>`` on every request when the server has a token):

- ``GET /v1/info``: the formats it runs and their runtime versions, the CPU count, host name, xsearch version,
  and the largest upload it accepts.
- ``POST /v1/latency?format=tflite&batch=1&threads=1&warmup=10&repeats=50`` with the model file as the body:
  ``runtime`` (the format), ``runtime_version``, ``threads``, ``batch_size``, ``median_ms``, ``p90_ms``, ``cv``,
  ``repeats``, ``warmup``, ``host``. Timings run one at a time (a lock), so that two uploads never share the CPU.

Errors are ``{"error": ...}``: 400 bad parameter (naming it and its valid values), 401 missing or wrong token,
404/405 unknown path or method, 411 no Content-Length, 413 body over ``max_bytes``, 422 a model that its runtime
cannot load or run (with the runtime's reason). SavedModels are folders and are not served: send tflite or onnx.
"""

from __future__ import annotations

import hmac
import importlib
import importlib.metadata
import json
import os
import socket
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final

from xsearch.common.network import is_loopback
from xsearch.common.timing import TimingStats
from xsearch.deploy import runtimes
from xsearch.deploy.runtimes import REMOTE_FORMATS

DEFAULT_PORT: Final = 8765
DEFAULT_MAX_BYTES: Final = 512 * 1024 * 1024
TOKEN_ENV: Final = "XSEARCH_LATENCY_TOKEN"
_RUNTIME_MODULE: Final = {"tflite": "ai_edge_litert.interpreter", "onnx": "onnxruntime"}
_LIMITS: Final = {
    "batch": (1, 1024),
    "warmup": (0, 1000),
    "repeats": (1, 10_000),
}  # threads: 1 to the CPU count
_DEFAULTS: Final = {"batch": 1, "threads": 1, "warmup": 10, "repeats": 50}
_CHUNK: Final = 1 << 20


class _HttpError(Exception):
    """A request refused with ``status`` and a message for the client."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def available_formats() -> dict[str, str]:
    """Each remote format whose runtime imports here, with its runtime version."""
    found = {}
    for fmt in REMOTE_FORMATS:
        try:
            importlib.import_module(_RUNTIME_MODULE[fmt])
        except ImportError:
            continue
        found[fmt] = runtimes.runtime_version(fmt)
    return found


def server_info(max_bytes: int) -> dict[str, Any]:
    """The answer of ``GET /v1/info``."""
    formats = available_formats()
    unavailable = {
        fmt: f"its runtime ({_RUNTIME_MODULE[fmt]}) is not installed: pip install 'xsearch[runtimes]'"
        for fmt in REMOTE_FORMATS
        if fmt not in formats
    }
    unavailable["savedmodel"] = (
        "a SavedModel is a folder, not served remotely: convert the model to tflite or onnx"
    )
    return {
        "formats": sorted(formats),
        "runtime_versions": formats,
        "unavailable": unavailable,
        "cpu_count": os.cpu_count() or 1,
        "host": socket.gethostname(),
        "xsearch_version": _xsearch_version(),
        "max_bytes": max_bytes,
    }


class LatencyServer(ThreadingHTTPServer):
    """The HTTP server of `serve`: its token, upload limit and formats, and the lock that serialises timings."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], token: str | None, max_bytes: int, quiet: bool
    ) -> None:
        super().__init__(address, _Handler)
        self.token, self.max_bytes, self.quiet = token, max_bytes, quiet
        self.info = server_info(max_bytes)
        self.timing_lock = threading.Lock()

    @property
    def url(self) -> str:
        """Where clients reach it (by this machine's name when bound to every address)."""
        host, port = self.server_address[:2]
        return f"http://{socket.gethostname() if host == '0.0.0.0' else host!s}:{port}"


def make_server(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    quiet: bool = False,
) -> LatencyServer:
    """A bound, not yet serving `LatencyServer` (``port=0``: a free port).

    Raises ValueError for a non-loopback ``host`` without a token, an empty token, or an address that cannot be bound.
    """
    if token is not None and not token:
        raise ValueError("the latency server's token is empty: set it to a long random string.")
    if token is None and not is_loopback(host):
        raise ValueError(
            f"refusing to serve on {host} without a token: anyone who can reach it could upload models. "
            f"Set one, e.g. `export {TOKEN_ENV}=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')`"
            " (or name another variable with --token-env), or bind to 127.0.0.1."
        )
    if max_bytes < 1:
        raise ValueError(f"max_bytes must be >= 1; received {max_bytes}.")
    try:
        return LatencyServer((host, port), token, max_bytes, quiet)
    except (OSError, OverflowError) as error:
        raise ValueError(
            f"{host}:{port} cannot be bound ({error}): pass another --port or stop what uses it."
        ) from None


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    token: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    quiet: bool = False,
) -> None:
    """Serve latency measurements on ``host:port`` until Ctrl-C, which stops it cleanly (see `make_server`)."""
    server = make_server(host, port, token, max_bytes, quiet)
    formats = (
        ", ".join(f"{fmt} ({version})" for fmt, version in server.info["runtime_versions"].items())
        or "none"
    )
    print(
        f"xsearch: latency server at {server.url} (formats: {formats}; "
        f"{'token required' if token else 'no token'}; Ctrl-C stops it)",
        file=sys.stderr,
        flush=True,
    )
    if token and not is_loopback(host):
        print(
            "xsearch: warning: plain HTTP: the token and models travel unencrypted; use a trusted network "
            "or an SSH tunnel.",
            file=sys.stderr,
            flush=True,
        )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("xsearch: latency server stopped", file=sys.stderr, flush=True)
    finally:
        server.server_close()


class _Handler(BaseHTTPRequestHandler):
    """One request: authorise, route, answer JSON; never a traceback to the client."""

    server: LatencyServer
    timeout = 120  # seconds a stalled upload may hold its thread
    _unread = 0  # bytes of the request body not read yet: drained before an early answer

    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def log_message(self, format: str, *args: Any) -> None:
        if not self.server.quiet:
            super().log_message(format, *args)

    def _answer(self, route: Callable[[urllib.parse.SplitResult], dict[str, Any]]) -> None:
        try:
            self._unread = self._content_length() or 0
            self._authorise()
            status, body = HTTPStatus.OK, route(urllib.parse.urlsplit(self.path))
        except _HttpError as error:
            status, body = error.status, {"error": str(error)}
        # a bug here: logged on the server, never a traceback to the client
        except Exception as error:
            self.log_error("internal error: %r", error)
            status, body = (
                HTTPStatus.INTERNAL_SERVER_ERROR,
                {"error": f"internal error ({type(error).__name__})"},
            )
        self._drain()
        self._send(status, body)

    def _get(self, url: urllib.parse.SplitResult) -> dict[str, Any]:
        if url.path == "/v1/latency":
            raise _HttpError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                "/v1/latency takes POST with the model file as the body.",
            )
        if url.path != "/v1/info":
            raise _HttpError(
                HTTPStatus.NOT_FOUND,
                f"no such endpoint {url.path}; endpoints: GET /v1/info, POST /v1/latency.",
            )
        return self.server.info

    def _post(self, url: urllib.parse.SplitResult) -> dict[str, Any]:
        if url.path == "/v1/info":
            raise _HttpError(HTTPStatus.METHOD_NOT_ALLOWED, "/v1/info takes GET.")
        if url.path != "/v1/latency":
            raise _HttpError(
                HTTPStatus.NOT_FOUND,
                f"no such endpoint {url.path}; endpoints: GET /v1/info, POST /v1/latency.",
            )
        fmt, numbers = _parse_latency_query(
            url.query, self.server.info["formats"], self.server.info["cpu_count"]
        )
        with tempfile.TemporaryDirectory(prefix="xsearch-latency-") as folder:
            path = Path(folder) / f"model{runtimes.SUFFIXES[fmt]}"
            self._receive(path)
            with self.server.timing_lock:
                stats = _time_upload(path, fmt, numbers)
        return {
            "runtime": fmt,
            "runtime_version": self.server.info["runtime_versions"][fmt],
            "threads": numbers["threads"],
            "batch_size": numbers["batch"],
            **stats.to_dict(),
            "warmup": numbers["warmup"],
            "host": self.server.info["host"],
        }

    def _authorise(self) -> None:
        if self.server.token is None:
            return
        given = self.headers.get("Authorization", "")
        expected = f"Bearer {self.server.token}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            reason = (
                "wrong token"
                if given
                else f"no token: send 'Authorization: Bearer <token>' (the server's ${TOKEN_ENV})"
            )
            raise _HttpError(HTTPStatus.UNAUTHORIZED, f"unauthorized: {reason}.")

    def _content_length(self) -> int | None:
        value = self.headers.get("Content-Length")
        if value is None:
            return None
        if not value.isdigit():
            raise _HttpError(
                HTTPStatus.BAD_REQUEST,
                f"Content-Length must be a number of bytes; received {value!r}.",
            )
        return int(value)

    def _receive(self, path: Path) -> None:
        """Write the request body to ``path`` in chunks (at most ``max_bytes``)."""
        length = self._content_length()
        if length is None:
            raise _HttpError(
                HTTPStatus.LENGTH_REQUIRED,
                "send the model file as the body, with a Content-Length.",
            )
        if length == 0:
            raise _HttpError(
                HTTPStatus.BAD_REQUEST, "the body is empty: send the model file as the body."
            )
        if length > self.server.max_bytes:
            raise _HttpError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body has {length} bytes; this server accepts at most {self.server.max_bytes}.",
            )
        with path.open("wb") as file:
            while self._unread:
                try:
                    chunk = self.rfile.read(min(_CHUNK, self._unread))
                except TimeoutError:
                    raise _HttpError(
                        HTTPStatus.REQUEST_TIMEOUT, f"the upload stalled for {self.timeout} s."
                    ) from None
                if not chunk:
                    raise _HttpError(
                        HTTPStatus.BAD_REQUEST,
                        f"the body ended {self._unread} bytes short of its Content-Length.",
                    )
                file.write(chunk)
                self._unread -= len(chunk)

    def _drain(self) -> None:
        """Read and drop what is left of the body, so that the client reads the answer rather than a
        reset connection."""
        try:
            while self._unread:
                chunk = self.rfile.read(min(_CHUNK, self._unread))
                if not chunk:
                    break
                self._unread -= len(chunk)
        except OSError:
            self._unread = 0

    def _send(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client went away


def _parse_latency_query(
    query: str, formats: list[str], cpu_count: int
) -> tuple[str, dict[str, int]]:
    """The format and the numbers (batch, threads, warmup, repeats) of a ``/v1/latency`` query;
    `_HttpError` 400 if bad."""
    try:
        pairs = urllib.parse.parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise _HttpError(HTTPStatus.BAD_REQUEST, f"malformed query string {query!r}.") from None
    valid = ("format", *_DEFAULTS)
    if unknown := sorted(set(pairs) - set(valid)):
        raise _HttpError(
            HTTPStatus.BAD_REQUEST,
            f"unknown parameter {unknown[0]!r}; parameters: {', '.join(valid)}.",
        )
    if repeated := sorted(name for name, values in pairs.items() if len(values) > 1):
        raise _HttpError(
            HTTPStatus.BAD_REQUEST, f"parameter {repeated[0]!r} is given more than once."
        )
    fmt = pairs.get("format", [""])[0]
    if fmt not in formats:
        raise _HttpError(
            HTTPStatus.BAD_REQUEST,
            f"format must be one of: {', '.join(formats) or 'none installed'}; received {fmt!r}.",
        )
    limits = {**_LIMITS, "threads": (1, cpu_count)}
    numbers = {}
    for name, default in _DEFAULTS.items():
        low, high = limits[name]
        text = pairs.get(name, [str(default)])[0]
        if not text.isdigit() or not low <= int(text) <= high:
            raise _HttpError(
                HTTPStatus.BAD_REQUEST,
                f"{name} must be an integer from {low} to {high}; received {text!r}.",
            )
        numbers[name] = int(text)
    return fmt, numbers


def _time_upload(path: Path, fmt: str, numbers: dict[str, int]) -> TimingStats:
    try:
        return runtimes.time_model_file(
            path, fmt, numbers["threads"], numbers["batch"], numbers["warmup"], numbers["repeats"]
        )
    except Exception as error:  # the runtime's reason goes back to the client
        raise _HttpError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            f"the {fmt} runtime could not load or run the model: {type(error).__name__}: {error}"[
                :1000
            ],
        ) from None


def _xsearch_version() -> str:
    try:
        return importlib.metadata.version("xsearch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
