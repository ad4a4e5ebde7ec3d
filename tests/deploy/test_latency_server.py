"""`xsearch latency-server` and its client, on loopback: a real tiny model timed remotely, and every refusal."""

from __future__ import annotations

import http.client
import json
import socket
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

from xsearch.cli import main
from xsearch.common.timing import timing_stats
from xsearch.deploy import runtimes
from xsearch.deploy.latency_client import RemoteLatencyError, measure_remote, remote_info
from xsearch.deploy.latency_server import TOKEN_ENV, LatencyServer, make_server

TOKEN = "s3cret-token"


@pytest.fixture
def start_server():
    """Start a `LatencyServer` on 127.0.0.1 (a free port) in a background thread; shut down after the test."""
    started = []

    def start(**settings) -> LatencyServer:
        server = make_server("127.0.0.1", 0, quiet=True, **settings)
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> dict[str, Path]:
    """A tiny design behind its normalization, converted to tflite and to onnx."""
    from xsearch.model.builder import build_model
    from xsearch.model.config import XceptionConfig
    from xsearch.study.fit import with_normalization

    model = with_normalization(
        build_model(XceptionConfig(middle_repeats=0, width=0.125), (16, 16, 3), 10),
        [120.0, 110.0, 100.0],
        [60.0, 60.0, 60.0],
    )
    folder = tmp_path_factory.mktemp("models")
    files = {fmt: folder / f"tiny{runtimes.SUFFIXES[fmt]}" for fmt in ("tflite", "onnx")}
    for fmt, path in files.items():
        runtimes.convert(model, fmt, path)
    return files


def post(
    server: LatencyServer, query: dict, body: bytes, token: str | None = None
) -> tuple[int, dict]:
    """A raw ``POST /v1/latency``: the status and the decoded JSON answer."""
    return request(server, "POST", f"/v1/latency?{urllib.parse.urlencode(query)}", body, token)


def request(
    server: LatencyServer,
    method: str,
    path: str,
    body: bytes | None = None,
    token: str | None = None,
) -> tuple[int, dict]:
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=60)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    status, answer = response.status, json.loads(response.read())
    connection.close()
    return status, answer


def test_info_lists_the_formats_it_runs(start_server):
    server = start_server()
    info = remote_info(server.url)
    assert info["formats"] == ["onnx", "tflite"]
    assert info["runtime_versions"] == {
        fmt: runtimes.runtime_version(fmt) for fmt in ("tflite", "onnx")
    }
    assert "savedmodel" in info["unavailable"]
    assert info["cpu_count"] >= 1
    assert info["host"]
    assert info["xsearch_version"]


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_a_real_model_timed_remotely(start_server, model_files, fmt, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the server writes the upload
    server = start_server(token=TOKEN)
    result = measure_remote(
        server.url, model_files[fmt], fmt, batch_size=2, threads=1, repeats=5, token=TOKEN, warmup=1
    )
    assert 0 < result["median_ms"] <= result["p90_ms"]
    assert (result["batch_size"], result["threads"], result["repeats"]) == (2, 1, 5)
    assert (result["runtime"], result["runtime_version"]) == (fmt, runtimes.runtime_version(fmt))
    assert (result["target"], result["url"]) == ("remote", server.url)
    assert list(tmp_path.iterdir()) == []  # the upload is removed after timing


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_a_missing_or_wrong_token_is_refused(start_server, model_files, token):
    server = start_server(token=TOKEN)
    status, answer = request(server, "GET", "/v1/info", token=token)
    assert status == 401
    assert "token" in answer["error"]
    with pytest.raises(RemoteLatencyError, match="token"):
        remote_info(server.url, token)
    with pytest.raises(RemoteLatencyError, match="token"):
        measure_remote(server.url, model_files["onnx"], "onnx", 1, 1, 1, token)
    assert remote_info(server.url, TOKEN)["formats"]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"format": "savedmodel"}, "format must be one of: onnx, tflite"),
        ({"format": "onnx", "batch": 0}, "batch must be an integer from 1 to 1024"),
        ({"format": "onnx", "threads": "two"}, "threads must be an integer from 1"),
        ({"format": "onnx", "repeats": 1, "seed": 3}, "unknown parameter 'seed'"),
    ],
)
def test_a_bad_parameter_is_400_naming_it(start_server, query, named):
    server = start_server()
    status, answer = post(server, query, b"model")
    assert status == 400
    assert named in answer["error"]


def test_the_client_raises_the_servers_message(start_server, tmp_path):
    server = start_server()
    model = tmp_path / "model.onnx"
    model.write_bytes(b"model")
    with pytest.raises(
        RemoteLatencyError, match=r"HTTP 400: repeats must be an integer from 1 to 10000"
    ):
        measure_remote(server.url, model, "onnx", 1, 1, 0, None)


def test_an_oversized_body_is_413(start_server):
    server = start_server(max_bytes=1000)
    status, answer = post(server, {"format": "onnx"}, b"x" * 5000)
    assert status == 413
    assert "at most 1000" in answer["error"]


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_a_garbage_model_is_422_and_the_server_keeps_serving(start_server, model_files, fmt):
    server = start_server()
    status, answer = post(server, {"format": fmt, "repeats": 1}, b"not a model" * 100)
    assert status == 422
    assert f"the {fmt} runtime could not load or run the model" in answer["error"]
    assert "Traceback" not in answer["error"]
    assert (
        measure_remote(server.url, model_files[fmt], fmt, 1, 1, 1, None, warmup=0)["median_ms"] > 0
    )


def test_timings_never_overlap(start_server, tmp_path, monkeypatch):
    running, overlaps = [], []

    def fake_timing(path, fmt, threads, batch_size, warmup, repeats):
        running.append(path)
        overlaps.append(len(running) > 1)
        time.sleep(0.2)
        running.remove(path)
        return timing_stats([1.0])

    monkeypatch.setattr(runtimes, "time_model_file", fake_timing)
    server = start_server()
    model = tmp_path / "model.onnx"
    model.write_bytes(b"model")
    clients = [
        threading.Thread(target=measure_remote, args=(server.url, model, "onnx", 1, 1, 1, None))
        for _ in range(3)
    ]
    for client in clients:
        client.start()
    for client in clients:
        client.join()
    assert overlaps == [False, False, False]


def test_unknown_endpoints_and_methods_answer_json(start_server):
    server = start_server()
    assert request(server, "GET", "/v2/info")[0] == 404
    assert request(server, "GET", "/v1/latency")[0] == 405
    assert request(server, "POST", "/v1/latency?format=onnx", b"")[0] == 400
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=60)
    connection.putrequest("POST", "/v1/latency?format=onnx")  # no Content-Length
    connection.endheaders()
    assert connection.getresponse().status == 411
    connection.close()


def test_an_unreachable_server_is_named():
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]  # free, and nothing listens once closed
    with pytest.raises(RemoteLatencyError, match=rf"http://127.0.0.1:{port}: unreachable"):
        remote_info(f"http://127.0.0.1:{port}", timeout_s=5)


def test_a_non_loopback_bind_needs_a_token():
    with pytest.raises(
        ValueError, match=rf"refusing to serve on 0.0.0.0 without a token.*{TOKEN_ENV}"
    ):
        make_server("0.0.0.0", 0)


def test_cli_refuses_a_non_loopback_bind_and_stops_on_ctrl_c(monkeypatch, capsys):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert main(["latency-server", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "without a token" in capsys.readouterr().err
    assert main(["latency-server", "--token-env", "XSEARCH_TEST_NO_SUCH_VARIABLE"]) == 2

    def interrupted(self, poll_interval=0.5):
        raise KeyboardInterrupt

    monkeypatch.setattr(LatencyServer, "serve_forever", interrupted)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert main(["latency-server", "--port", "0"]) == 0
    err = capsys.readouterr().err
    assert "latency server at http://127.0.0.1:" in err
    assert "onnx" in err
    assert "token required" in err
