"""The HTTP service, end to end: a real uvicorn server in a subprocess on a free loopback port,
talked to over HTTP with the standard library's client."""
import io
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import http.client
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service needs its extra: pip install \"crnn_captcha[serve]\"")
pytest.importorskip("uvicorn", reason="the service needs its extra: pip install \"crnn_captcha[serve]\"")
pytest.importorskip("prometheus_client", reason="the service needs its extra: pip install \"crnn_captcha[serve]\"")
pytest.importorskip("python_multipart", reason="the service needs its extra: pip install \"crnn_captcha[serve]\"")

import crnn_captcha  # noqa: E402
from crnn_captcha import serve  # noqa: E402
from crnn_captcha.service.app import create_app  # noqa: E402
from crnn_captcha.service.settings import API_KEY_ENV  # noqa: E402
from conftest import CAPTCHA_V2, ROOT, need  # noqa: E402
from synth import render, strips_gif  # noqa: E402

LIMIT = 100_000  # the module server's --max-body-bytes: small, so oversized bodies are quick to send
KEY = "test-key-0123456789"
REAL = ["6mege", "fcey3", "88bgx"]  # captcha v2 images of the test split that the shipped model reads right


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(text: str = "2b4c6", seed: int = 0) -> bytes:
    buf = io.BytesIO()
    render(text, seed=seed).save(buf, "PNG")
    return buf.getvalue()


def start_server(tmp_path: Path, *args: str, env: dict | None = None):
    """``python -m crnn_captcha.serve`` on a free port; returns (process, port) once /health answers."""
    port = free_port()
    log = open(tmp_path / f"server-{port}.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "crnn_captcha.serve", "--port", str(port), "--log-level",
                             "warning", *args], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**{k: v for k, v in os.environ.items() if k != API_KEY_ENV}, **(env or {})})
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"server exited with {proc.returncode}: {log.read()[-2000:]}")
        try:
            if call(port, "GET", "/health")[0] == 200:
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail("server did not answer /health within 90 s")


def stop_server(proc) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def call(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, headers, body) of one request; every answer is checked for a leaked traceback."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    assert b"Traceback" not in data and b'File "' not in data, data[:500]
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def multipart(*files: tuple[str, bytes], fields: dict | None = None) -> tuple[bytes, dict]:
    """A multipart/form-data body with one ``file`` field per (filename, bytes)."""
    boundary = "crnn-test-boundary-1234"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in (fields or {}).items()]
    for name, data in files:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                     f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def error_of(status_body) -> str:
    """The one-line message of a JSON error answer."""
    data = json.loads(status_body)
    assert set(data) == {"error"}, data
    assert isinstance(data["error"], str) and data["error"] and "\n" not in data["error"]
    return data["error"]


def metric(port: int, line_start: str) -> float:
    text = call(port, "GET", "/metrics")[2].decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start))


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    proc, port = start_server(tmp_path_factory.mktemp("serve"), "--max-body-bytes", str(LIMIT),
                              "--read-timeout", "1")
    yield port
    stop_server(proc)


# ----- reading ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_reads_real_captchas_raw_and_multipart(port):
    folder = need(CAPTCHA_V2)
    for label in REAL:
        data = (folder / f"{label}.png").read_bytes()
        status, headers, body = call(port, "POST", "/read", data, {"Content-Type": "image/png"})
        assert status == 200 and headers["content-type"] == "application/json", body
        got = json.loads(body)
        assert got["text"] == label
        assert 0.0 <= got["confidence"] <= 1.0 and len(got["char_confidences"]) == len(label)
        form, form_headers = multipart((f"{label}.png", data))
        status, _, body = call(port, "POST", "/read?length=5&decoder=beam&beam_width=4", form, form_headers)
        assert status == 200 and json.loads(body)["text"] == label


@pytest.mark.slow
@pytest.mark.parametrize("fmt, content_type", [("GIF", "image/gif"), ("PNG", "image/apng"), ("WEBP", "image/webp")])
def test_animated_bodies_are_read_across_their_frames(port, fmt, content_type):
    from PIL import Image

    sample = ROOT / "crnn_captcha" / "samples" / "8xypd.png"
    data = strips_gif(Image.open(sample), 5, fmt)  # one strip of the text a frame
    status, _, body = call(port, "POST", "/read", data, {"Content-Type": content_type})
    assert status == 200 and json.loads(body)["text"] == "8xypd", body


@pytest.mark.slow
def test_ignore_case_in_the_query(port):
    data = (ROOT / "crnn_captcha" / "samples" / "8xypd.png").read_bytes()
    for query in ("ignore_case=true", "ignore_case=0"):
        status, _, body = call(port, "POST", f"/read?{query}", data, {"Content-Type": "image/png"})
        assert status == 200 and json.loads(body)["text"] == "8xypd", body


@pytest.mark.slow
def test_raw_and_multipart_bodies_give_the_same_answer(port):
    data = png(seed=3)
    raw = json.loads(call(port, "POST", "/read", data, {"Content-Type": "application/octet-stream"})[2])
    form = json.loads(call(port, "POST", "/read", *multipart(("x.png", data)))[2])
    assert raw == form
    assert isinstance(raw["text"], str) and 0.0 <= raw["confidence"] <= 1.0
    fixed = json.loads(call(port, "POST", "/read?length=5&allowed=2345678", data, {"Content-Type": "image/png"})[2])
    assert len(fixed["text"]) == 5 and set(fixed["text"]) <= set("2345678")


@pytest.mark.slow
def test_batch_answers_in_order_and_marks_the_bad_image(port):
    good = [png("2b4c6", seed=1), png("8xypd", seed=2)]
    body, headers = multipart(("a.png", good[0]), ("bad.png", b"not an image at all"), ("c.png", good[1]))
    status, _, data = call(port, "POST", "/read/batch", body, headers)
    assert status == 200, data
    out = json.loads(data)
    assert out["failed"] == 1 and [r["index"] for r in out["results"]] == [0, 1, 2]
    assert [r["name"] for r in out["results"]] == ["a.png", "bad.png", "c.png"]
    assert out["results"][1]["text"] is None and out["results"][1]["error"].startswith("bad.png: not an image")
    singles = [json.loads(call(port, "POST", "/read", g, {"Content-Type": "image/png"})[2])["text"] for g in good]
    assert [out["results"][0]["text"], out["results"][2]["text"]] == singles


@pytest.mark.slow
def test_batch_of_real_captchas(port):
    folder = need(CAPTCHA_V2)
    status, _, data = call(port, "POST", "/read/batch", *multipart(*[(f"{n}.png", (folder / f"{n}.png").read_bytes())
                                                                     for n in REAL]))
    assert status == 200 and [r["text"] for r in json.loads(data)["results"]] == REAL


# ----- refusals --------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("body, needle", [
    (b"garbage, not an image", "not an image file"),
    (b"", "empty input"),
    (None, "truncated"),  # the first half of a PNG
])
def test_bad_image_is_400_naming_the_problem(port, body, needle):
    if body is None:
        whole = png()
        body = whole[: len(whole) // 2]
    status, headers, data = call(port, "POST", "/read", body, {"Content-Type": "image/png"})
    assert status == 400 and headers["content-type"] == "application/json"
    message = error_of(data)
    assert message.startswith("body: ") and needle in message


@pytest.mark.slow
@pytest.mark.parametrize("query, needle", [
    ("beam_width=-1", "beam_width"),
    ("length=abc", "length must be a whole number"),
    ("length=--5", "length must be a whole number"),
    ("beam_width=" + "9" * 5000, "beam_width must be a whole number"),
    ("length=0", "length"),
    ("decoder=x", "decoder 'x' is unknown"),
    ("allowed=ABC", "not in the model's charset"),
    ("allowed=", "allowed must be a non-empty"),
    ("lenght=5", "unknown query parameter 'lenght'"),
    ("length=5&length=6", "given 2 times"),
    ("ignore_case=maybe", "ignore_case must be true or false"),
])
def test_bad_query_values_are_400(port, query, needle):
    status, _, data = call(port, "POST", f"/read?{query}", png(), {"Content-Type": "image/png"})
    assert status == 400 and needle in error_of(data)


@pytest.mark.slow
def test_wrong_content_types_are_refused(port):
    status, _, data = call(port, "POST", "/read", png(), {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 415 and "Content-Type image/png" in error_of(data)
    status, _, data = call(port, "POST", "/read/batch", png(), {"Content-Type": "image/png"})
    assert status == 415 and "multipart/form-data" in error_of(data)
    status, _, data = call(port, "POST", "/read", b"xx", {"Content-Type": "multipart/form-data"})
    assert status == 400 and "boundary" in error_of(data)
    body, headers = multipart(("a.png", png()), ("b.png", png()))
    status, _, data = call(port, "POST", "/read", body, headers)
    assert status == 400 and "/read/batch" in error_of(data)
    body, headers = multipart(fields={"note": "hello"})
    status, _, data = call(port, "POST", "/read/batch", body, headers)
    assert status == 400 and "not a file" in error_of(data)


@pytest.mark.slow
def test_404_and_405_are_json(port):
    status, _, data = call(port, "GET", "/nowhere")
    assert status == 404 and "no route '/nowhere'" in error_of(data)
    status, headers, data = call(port, "GET", "/read")
    assert status == 405 and "use POST" in error_of(data) and headers["allow"] == "POST"
    status, _, data = call(port, "DELETE", "/health")
    assert status == 405 and error_of(data)
    status, _, data = call(port, "HEAD", "/health")  # what many health checkers send
    assert status == 200 and data == b""
    for path in ("/docs", "/openapi.json", "/redoc"):  # no interactive docs on a service
        assert call(port, "GET", path)[0] == 404


def raw_exchange(port: int, head: bytes, chunks=(), pause: float = 0.0, timeout: float = 10.0):
    """Send a request head and body pieces on a bare socket; returns (status, body, seconds to answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        start = time.monotonic()
        s.sendall(head)
        for piece in chunks:
            try:
                s.sendall(piece)
            except OSError:  # the server has closed its side
                break
            if select.select([s], [], [], pause)[0]:
                break  # answered: stop sending, as a client would
        data = b""
        while True:  # every refusal closes the connection: read to the end
            got = s.recv(65536)
            if not got:
                break
            data += got
        elapsed = time.monotonic() - start
    head_part, _, body = data.partition(b"\r\n\r\n")
    assert b"connection: close" in head_part.lower(), head_part  # a refused body is not read on
    return int(head_part.split(b" ", 2)[1]), body, elapsed


@pytest.mark.slow
def test_oversized_body_with_content_length_is_413_unread(port):
    head = (f"POST /read HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: {LIMIT + 1}\r\n\r\n"
            .encode())
    status, body, elapsed = raw_exchange(port, head)  # no body sent at all: the length alone is refused
    assert status == 413 and f"{LIMIT:,} bytes" in error_of(body) and elapsed < 1.0


@pytest.mark.slow
def test_oversized_chunked_body_is_413_before_it_ends(port):
    head = b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n"
    piece = b"x" * 10_000
    chunks = [b"%x\r\n" % len(piece) + piece + b"\r\n"] * (LIMIT // len(piece) + 1)  # no last chunk: never ends
    status, body, elapsed = raw_exchange(port, head, chunks)
    assert status == 413 and "over the limit" in error_of(body) and elapsed < 1.0  # not the 1 s read timeout


@pytest.mark.slow
def test_slow_body_times_out_without_disturbing_others(port):
    head = b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n"
    result = {}
    slow = threading.Thread(target=lambda: result.update(
        answer=raw_exchange(port, head, [b"\x89"] * 10, pause=0.3)))  # one byte every 0.3 s
    slow.start()
    time.sleep(0.2)
    status, _, _ = call(port, "POST", "/read", png(), {"Content-Type": "image/png"})
    assert status == 200 and "answer" not in result  # answered while the slow body still trickles
    slow.join(15)
    status, body, elapsed = result["answer"]
    assert status == 408 and "did not arrive within 1 s" in error_of(body) and 0.9 < elapsed < 5


@pytest.mark.slow
def test_a_client_that_leaves_mid_body_harms_nothing(port):
    before = metric(port, 'crnn_captcha_errors_total{kind="client_disconnected"}')
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\nabc")
        time.sleep(0.1)
    deadline = time.monotonic() + 5
    while metric(port, 'crnn_captcha_errors_total{kind="client_disconnected"}') == before:
        assert time.monotonic() < deadline, "the server did not notice the client leave"
        time.sleep(0.05)
    assert call(port, "POST", "/read", png(), {"Content-Type": "image/png"})[0] == 200


# ----- health, metrics, description ------------------------------------------------------------
@pytest.mark.slow
def test_health_description_and_metrics_change(port):
    status, _, data = call(port, "GET", "/health")
    assert status == 200 and json.loads(data) == {"status": "ok"}
    info = json.loads(call(port, "GET", "/")[2])
    assert info["version"] == crnn_captcha.__version__ and info["model"]["alphabet"] == "2345678bcdefgmnpwxy"
    assert info["model"]["input_size"] == {"height": 32, "width": 128} and info["api_key"] is False
    assert info["model"]["widths"] == [1.0]
    status, headers, text = call(port, "GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert b"process_resident_memory_bytes" in text and b"crnn_captcha_request_seconds_bucket" in text
    before_ok = metric(port, 'crnn_captcha_requests_total{route="/read",status="200"}')
    before_bad = metric(port, 'crnn_captcha_errors_total{kind="bad_image"}')
    before_batches = metric(port, "crnn_captcha_batch_images_count")
    call(port, "POST", "/read", png(), {"Content-Type": "image/png"})
    call(port, "POST", "/read", b"nope", {"Content-Type": "image/png"})
    assert metric(port, 'crnn_captcha_requests_total{route="/read",status="200"}') == before_ok + 1
    assert metric(port, 'crnn_captcha_errors_total{kind="bad_image"}') == before_bad + 1
    assert metric(port, "crnn_captcha_batch_images_count") == before_batches + 2


@pytest.mark.slow
def test_concurrent_requests_are_batched_and_all_answered(port):
    images = [png(seed=i) for i in range(4)]
    expected = [json.loads(call(port, "POST", "/read", im, {"Content-Type": "image/png"})[2])["text"] for im in images]
    calls_before = metric(port, "crnn_captcha_batch_images_count")
    results = [None] * 32
    with_threads = [threading.Thread(target=lambda i=i: results.__setitem__(
        i, call(port, "POST", "/read", images[i % 4], {"Content-Type": "image/png"}))) for i in range(32)]
    for t in with_threads:
        t.start()
    for t in with_threads:
        t.join(30)
    assert [json.loads(r[2])["text"] for r in results] == [expected[i % 4] for i in range(32)]
    assert metric(port, "crnn_captcha_batch_images_count") - calls_before < 32  # fewer model calls than requests


# ----- the API key -----------------------------------------------------------------------------
@pytest.mark.slow
def test_api_key(tmp_path):
    proc, key_port = start_server(tmp_path, env={API_KEY_ENV: KEY})
    try:
        for headers in ({}, {"X-API-Key": "wrong"}, {"Authorization": f"Basic {KEY}"}, {"Authorization": "Bearer"}):
            status, answer_headers, data = call(key_port, "POST", "/read", png(), {"Content-Type": "image/png", **headers})
            assert status == 401 and "API key" in error_of(data) and answer_headers["www-authenticate"] == "Bearer"
        for path in ("/", "/metrics", "/nowhere"):
            assert call(key_port, "GET", path)[0] == 401
        assert call(key_port, "GET", "/health")[0] == 200  # open, for health checks
        for headers in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}):
            status, _, data = call(key_port, "POST", "/read", png(), {"Content-Type": "image/png", **headers})
            assert status == 200 and isinstance(json.loads(data)["text"], str)
        assert json.loads(call(key_port, "GET", "/", headers={"X-API-Key": KEY})[2])["api_key"] is True
        assert 'kind="unauthorized"' in call(key_port, "GET", "/metrics", headers={"X-API-Key": KEY})[2].decode()
    finally:
        stop_server(proc)


# ----- an internal failure, in process -----------------------------------------------------------
def test_internal_error_is_a_bare_500_and_the_server_goes_on(tmp_path):
    import uvicorn

    from crnn_captcha import CaptchaReader

    reader = CaptchaReader(device="cpu")

    async def broken(*args, **kwargs):
        raise RuntimeError("secret detail /home/user/model.py line 7")

    reader.apredict_batch = broken
    sock = serve.listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(reader), log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(2):  # the batcher survives the failure and answers the next request too
            status, _, data = call(port, "POST", "/read", png(), {"Content-Type": "image/png"})
            assert status == 500 and error_of(data) == "internal error" and b"secret" not in data
        assert call(port, "GET", "/health")[0] == 200
        assert metric(port, 'crnn_captcha_errors_total{kind="internal"}') == 2
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# ----- the command line ------------------------------------------------------------------------
def test_missing_packages_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if it were not installed
    assert serve.main(["--port", "8000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'pip install "crnn_captcha[serve]"' in err[0] and "fastapi" in err[0]


@pytest.mark.parametrize("args, needle", [
    (["--port", "70000"], "not a port number"),
    (["--port", "x"], "--port"),
    (["--max-body-bytes", "0"], "--max-body-bytes"),
    (["--read-timeout", "-1"], "--read-timeout"),
    (["--batch-wait-ms", "nan"], "--batch-wait-ms"),
    (["--max-batch", "0"], "--max-batch"),
])
def test_bad_option_values_are_usage_errors(args, needle, capsys):
    with pytest.raises(SystemExit) as e:
        serve.main(args)
    assert e.value.code == 2 and needle in capsys.readouterr().err


def test_refusals_before_the_model_loads(monkeypatch, capsys):
    assert serve.main(["--batch-wait-ms", "5000"]) == 2
    assert "--batch-wait-ms" in capsys.readouterr().err
    assert serve.main(["--api-key", "has space"]) == 2
    assert "printable ASCII" in capsys.readouterr().err
    monkeypatch.setenv(API_KEY_ENV, " ")
    assert serve.main([]) == 2
    assert "is set but empty" in capsys.readouterr().err
    monkeypatch.delenv(API_KEY_ENV)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert serve.main(["--port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot listen on 127.0.0.1:")


def test_costly_beam_searches_are_refused_so_others_keep_moving(port, capsys):
    """beam_width=1000 took seconds an image and held the model for every other request: beam width
    x images is bounded per request (--max-beam-work, 400 by default)."""
    status, _, body = call(port, "POST", "/read?decoder=beam&beam_width=1000", png(), {"Content-Type": "image/png"})
    assert status == 400 and "beam_width 1000 x 1 reading(s) (1 image(s) at 1 width(s)) is 1000 units of beam search" \
        in error_of(body)
    form, headers = multipart(*[(f"{i}.png", png(seed=i)) for i in range(2)])
    status, _, body = call(port, "POST", "/read/batch?decoder=beam&beam_width=201", form, headers)
    assert status == 400 and "more than one request may ask for here (400)" in error_of(body)
    status, _, body = call(port, "POST", "/read?decoder=beam&beam_width=400", png(), {"Content-Type": "image/png"})
    assert status == 200 and json.loads(body)["text"] is not None
    assert serve.main(["--decoder", "beam", "--beam-width", "500", "--port", str(free_port())]) == 2
    assert ("--decoder beam --beam-width 500 with --max-files 64 and 1 width(s) lets a request ask for 32000 units of "
            "beam search, more than --max-beam-work 400") in capsys.readouterr().err
    # each width is a beam search of its own: 300 x 1 image fits 400, but not at two widths
    assert serve.main(["--decoder", "beam", "--beam-width", "300", "--max-files", "1", "--widths", "1", "2",
                       "--port", str(free_port())]) == 2
    assert "and 2 width(s) lets a request ask for 600 units" in capsys.readouterr().err


@pytest.mark.slow
def test_requests_cut_by_shutdown_get_a_json_503(tmp_path):
    """SIGTERM while the model works: after the 5 s of grace the server stops waiting; the requests
    it dropped get JSON 503 (it sent plain-text 500s, with tracebacks in its log)."""
    import signal
    import threading

    proc, port = start_server(tmp_path, "--max-beam-work", "1000000")
    body, headers = multipart(*[(f"{k}.png", png(seed=k)) for k in range(8)])
    answers = []

    def slow():  # beam search of width 1000 on 8 images: far longer than the grace
        answers.append(call(port, "POST", "/read/batch?decoder=beam&beam_width=1000", body, headers))

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    thread.join(60)
    proc.wait(30)
    [(status, got_headers, data)] = answers
    assert status == 503 and got_headers["content-type"] == "application/json"
    assert error_of(data) == "server shutting down; send the request again"


def closed_after(port: int, send: bytes) -> tuple[float, bytes]:
    """(seconds until the server closed the connection, what it sent) after sending ``send``."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        start = time.monotonic()
        if send:
            s.sendall(send)
        data = b""
        while got := s.recv(65536):
            data += got
        return time.monotonic() - start, data


@pytest.mark.slow
def test_connections_without_a_whole_request_head_are_closed(port):
    """A connection that sends nothing, or only part of its headers, held a slot for ever (60 of them
    made every /read a 503): now the headers must arrive within --read-timeout (1 s here)."""
    for send in (b"", b"POST /read HTTP/1.1\r\nHost: x\r\n"):
        seconds, data = closed_after(port, send)
        assert seconds < 6 and data == b"", (send, seconds, data)
    seconds, data = closed_after(port, b"GARBAGE\x00\x01 nonsense\r\n\r\n")  # not HTTP: a JSON 400
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head
    assert json.loads(body) == {"error": "not a valid HTTP request"}
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:  # a kept-alive connection still works
        for _ in range(2):
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b'{"status":"ok"}'):
                answer += s.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200")
            time.sleep(1.5)  # longer than the deadline, between requests: the keep-alive time covers it
