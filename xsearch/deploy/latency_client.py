"""The client of `xsearch latency-server` (`xsearch.deploy.latency_server`, which describes the protocol): a model
file timed on a remote machine, and the server's description of itself."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from http import HTTPStatus
from pathlib import Path
from typing import Any

from xsearch.deploy.latency_server import DEFAULT_PORT


class RemoteLatencyError(RuntimeError):
    """A remote latency measurement that failed: the server unreachable, the token refused, or a request it refused."""


def measure_remote(
    url: str,
    model_file: Path,
    fmt: str,
    batch_size: int,
    threads: int,
    repeats: int,
    token: str | None,
    timeout_s: float = 300.0,
    warmup: int = 10,
) -> dict[str, Any]:
    """Time ``model_file`` (a ``fmt`` file) on the latency server at ``url``: its answer plus ``target`` and ``url``.

    Raises `RemoteLatencyError` naming ``url`` and what went wrong.
    """
    model_file = Path(model_file)
    if not model_file.is_file():
        raise RemoteLatencyError(
            f"{url}: {model_file} is not a model file (the server takes tflite or onnx files)."
        )
    query = urllib.parse.urlencode(
        {
            "format": fmt,
            "batch": batch_size,
            "threads": threads,
            "warmup": warmup,
            "repeats": repeats,
        }
    )
    request = urllib.request.Request(
        f"{_base(url)}/v1/latency?{query}",
        data=model_file.read_bytes(),
        method="POST",
        headers={"Content-Type": "application/octet-stream"},
    )
    return {**_call(url, request, token, timeout_s), "target": "remote", "url": url}


def remote_info(url: str, token: str | None = None, timeout_s: float = 30.0) -> dict[str, Any]:
    """The latency server's ``/v1/info`` at ``url``; raises `RemoteLatencyError` naming ``url`` and what went wrong."""
    return _call(url, urllib.request.Request(f"{_base(url)}/v1/info"), token, timeout_s)


def _base(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RemoteLatencyError(
            f"{url}: not a latency server URL; expected e.g. http://HOST:{DEFAULT_PORT}."
        )
    return url.rstrip("/")


def _call(
    url: str, request: urllib.request.Request, token: str | None, timeout_s: float
) -> dict[str, Any]:
    """Send ``request`` (with the token) and decode its JSON answer; every failure is a `RemoteLatencyError`."""
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        message = _error_message(error)
        if error.code == HTTPStatus.UNAUTHORIZED:
            hint = (
                "pass the server's token"
                if token is None
                else "the token differs from the server's"
            )
            raise RemoteLatencyError(
                f"{url}: the server refused the token (401: {message}); {hint}."
            ) from None
        raise RemoteLatencyError(f"{url}: HTTP {error.code}: {message}") from None
    except TimeoutError:
        raise RemoteLatencyError(f"{url}: no answer within {timeout_s:g} s.") from None
    except urllib.error.URLError as error:
        if isinstance(error.reason, TimeoutError):
            raise RemoteLatencyError(f"{url}: no answer within {timeout_s:g} s.") from None
        raise RemoteLatencyError(
            f"{url}: unreachable ({error.reason}); is `xsearch latency-server` running there?"
        ) from None
    except OSError as error:  # e.g. the connection reset while uploading
        raise RemoteLatencyError(
            f"{url}: the connection failed ({type(error).__name__}: {error})."
        ) from None
    try:
        answer = json.loads(body)
    except ValueError:
        raise RemoteLatencyError(
            f"{url}: the answer is not JSON; is it an xsearch latency server?"
        ) from None
    if not isinstance(answer, dict):
        raise RemoteLatencyError(
            f"{url}: the answer is not a JSON object; is it an xsearch latency server?"
        )
    return answer


def _error_message(error: urllib.error.HTTPError) -> str:
    """The server's ``error`` field, else the HTTP reason."""
    try:
        return str(json.loads(error.read())["error"])
    except (ValueError, KeyError, TypeError, OSError):
        return str(error.reason)
