"""Read captchas over HTTP: a small FastAPI service around one CaptchaReader.

    pip install "crnn_captcha[serve]"
    python -m crnn_captcha.serve                         # the shipped model on http://127.0.0.1:8000
    crnn-captcha serve --checkpoint runs/mine/best.pt --port 9000
    CRNN_CAPTCHA_API_KEY=s3cret crnn-captcha serve       # every route but /health needs the key

    curl -s -H "Content-Type: image/png" --data-binary @226md.png http://127.0.0.1:8000/read
    curl -s -F file=@226md.png "http://127.0.0.1:8000/read?length=5"
    curl -s -F file=@a.png -F file=@b.png http://127.0.0.1:8000/read/batch

Routes: POST /read (one image: the raw body or a multipart file field; query options decoder,
beam_width, length, allowed), POST /read/batch (several multipart files, answers in order, a bad
image marked with its error), GET /health (open even with an API key), GET /metrics (Prometheus
text), GET / (version, model, alphabet, input size).

Safe defaults: listens on 127.0.0.1; bodies over --max-body-bytes get 413 before they are read whole;
a body that has not arrived within --read-timeout seconds gets 408; errors are JSON
{"error": "one line"}, never a traceback. Concurrent requests are batched: the images that arrive
within --batch-wait-ms (at most --max-batch of them) go to the model in one call, in a worker thread.
"""
# No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at run time,
# and the routes are closures whose ``Request`` is imported inside add_routes (FastAPI is optional).
import argparse
import asyncio
import gc
import hashlib
import hmac
import importlib.util
import ipaddress
import logging
import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from . import cli
from ._version import __version__
from .ctc import DecodeOptions, allowed_mask
from .errors import CaptchaError, OptionError

API_KEY_ENV = "CRNN_CAPTCHA_API_KEY"
#: (import name, pip name) of what the service needs beyond the library
WEB_PACKAGES = (("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("prometheus_client", "prometheus-client"),
                ("python_multipart", "python-multipart"))
ROUTES = {"/": "GET", "/health": "GET", "/metrics": "GET", "/read": "POST", "/read/batch": "POST"}
QUERY_OPTIONS = ("decoder", "beam_width", "length", "allowed")
RAW_TYPES = ("application/octet-stream",)
log = logging.getLogger("crnn_captcha.serve")


@dataclass(frozen=True)
class ServeSettings:
    """How the service guards and batches; see the command's options for each field."""

    api_key: str | None = None
    max_body_bytes: int = 2 * 1024 * 1024
    read_timeout: float = 10.0
    batching: bool = True
    batch_wait_ms: float = 2.0
    max_batch: int = 32
    max_queue: int = 128
    max_files: int = 64
    batch_size: int = 64


class ApiError(Exception):
    """An answer other than 200: its status, a kind for the metrics and a one-line message."""

    def __init__(self, status: int, kind: str, message: str, close: bool = False):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, cli.one_line(self)
        # A refused request whose body may still be on its way: close the connection instead of
        # reading (and discarding) the rest of it.
        self.headers = {"Connection": "close"} if close else {}


def missing_packages() -> list[str]:
    """The pip names of the service's packages that are not installed."""
    return [pip for module, pip in WEB_PACKAGES if importlib.util.find_spec(module) is None]


# ----- metrics ---------------------------------------------------------------------------------
class Metrics:
    """The service's Prometheus metrics, in a registry of its own (several apps may share a process)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes, cpu seconds, ...
        self.requests = Counter("crnn_captcha_requests_total", "HTTP requests answered, by route and status",
                                ["route", "status"], registry=self.registry)
        self.errors = Counter("crnn_captcha_errors_total", "error answers by kind", ["kind"], registry=self.registry)
        self.latency = Histogram("crnn_captcha_request_seconds", "time from request to answer, by route", ["route"],
                                 buckets=(.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10),
                                 registry=self.registry)
        self.batch = Histogram("crnn_captcha_batch_images", "images per model call",
                               buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry)
        self.model_seconds = Histogram("crnn_captcha_model_call_seconds", "time of one model call (decode "
                                       "images, run the model, decode text)",
                                       buckets=(.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2),
                                       registry=self.registry)
        self.images = Counter("crnn_captcha_images_total", "images read, by outcome", ["outcome"],
                              registry=self.registry)
        self.queued = Gauge("crnn_captcha_pending_requests", "requests handed to the model and not yet answered",
                            registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


# ----- the model: batched or one request at a time ----------------------------------------------
@dataclass
class Job:
    images: list[bytes]
    options: DecodeOptions
    future: asyncio.Future


def settle(job: Job, result: Any = None, error: BaseException | None = None) -> None:
    """Answer a job's waiting request, unless it has gone (cancelled) meanwhile."""
    if job.future.done():
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(result)


class Runner:
    """Runs the reader for requests; the model always works in a worker thread.

    This base class reads each request on its own (``--no-batching``); :class:`Batcher` gathers them.
    ``arriving`` counts requests whose body is still being received: a batcher waits for more work
    only while some is on its way.
    """

    def __init__(self, reader, metrics: Metrics, settings: ServeSettings):
        self.reader, self.metrics, self.settings = reader, metrics, settings
        self.arriving = 0
        self.waiting = 0
        self.running = False

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    @property
    def alive(self) -> bool:
        return self.running

    def busy(self) -> ApiError:
        return ApiError(503, "busy", f"server busy: {self.settings.max_queue} requests already wait for the model; "
                                     "try again shortly")

    async def predict(self, images: list[bytes], options: DecodeOptions) -> list:
        """One model call (``reader.apredict_batch``) with the metrics around it."""
        self.metrics.batch.observe(len(images))
        start = time.perf_counter()
        preds = await self.reader.apredict_batch(
            images, self.settings.batch_size, "mark", decoder=options.decoder, beam_width=options.beam_width,
            length=options.length, allowed=options.allowed)
        self.metrics.model_seconds.observe(time.perf_counter() - start)
        failed = sum(not p.ok for p in preds)
        self.metrics.images.labels("read").inc(len(preds) - failed)
        self.metrics.images.labels("failed").inc(failed)
        return preds

    async def submit(self, images: list[bytes], options: DecodeOptions) -> list:
        """The predictions for ``images`` (in order); 503 when too many requests already wait."""
        if self.waiting >= self.settings.max_queue:
            raise self.busy()
        self.waiting += 1
        self.metrics.queued.inc()
        try:
            return await self.predict(images, options)
        finally:
            self.waiting -= 1
            self.metrics.queued.dec()


class Batcher(Runner):
    """Gathers concurrent requests into one model call.

    One task takes the first waiting request, then keeps collecting for at most ``batch_wait_ms``
    (and only while other requests are still arriving) or until ``max_batch`` images are in hand;
    requests with different decoding options go to separate calls. While a call runs, new requests
    queue (at most ``max_queue``; beyond that 503) and form the next batch.
    """

    def __init__(self, reader, metrics: Metrics, settings: ServeSettings):
        super().__init__(reader, metrics, settings)
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.queue = asyncio.Queue(self.settings.max_queue)
        self.task = asyncio.get_running_loop().create_task(self._serve())
        self.running = True

    @property
    def alive(self) -> bool:
        return self.running and self.task is not None and not self.task.done()

    async def stop(self) -> None:
        self.running = False
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        while self.queue is not None and not self.queue.empty():
            settle(self.queue.get_nowait(), error=ApiError(503, "busy", "server shutting down"))

    async def submit(self, images: list[bytes], options: DecodeOptions) -> list:
        job = Job(images, options, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            raise self.busy() from None
        self.metrics.queued.inc()
        try:
            return await job.future
        finally:
            self.metrics.queued.dec()

    async def _collect(self) -> list[Job]:
        jobs = [await self.queue.get()]
        count = len(jobs[0].images)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.batch_wait_ms / 1000.0
        try:
            while count < self.settings.max_batch:
                if self.queue.empty():
                    remaining = deadline - loop.time()
                    if remaining <= 0 or self.arriving == 0:
                        break  # waiting longer would only add latency
                    try:
                        job = await asyncio.wait_for(self.queue.get(), remaining)
                    except asyncio.TimeoutError:
                        break
                else:
                    job = self.queue.get_nowait()
                jobs.append(job)
                count += len(job.images)
        except asyncio.CancelledError:
            for job in jobs:
                settle(job, error=ApiError(503, "busy", "server shutting down"))
            raise
        return jobs

    async def _serve(self) -> None:
        """The batcher's loop: it never ends but by cancellation, whatever a model call raises."""
        while True:
            jobs = await self._collect()
            groups: dict[DecodeOptions, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.options, []).append(job)
            try:
                for options, group in groups.items():
                    try:
                        await self._run_group(options, group)
                    except Exception:  # a bug, not a bad request: logged here, a bare 500 for the group
                        log.exception("a model call failed")
                        for job in group:
                            settle(job, error=ApiError(500, "internal", "internal error"))
            except asyncio.CancelledError:
                for job in jobs:
                    settle(job, error=ApiError(503, "busy", "server shutting down"))
                raise

    async def _run_group(self, options: DecodeOptions, group: list[Job]) -> None:
        """One model call for the images of requests with the same options; each gets its share."""
        preds = await self.predict([image for job in group for image in job.images], options)
        start = 0
        for job in group:
            settle(job, preds[start:start + len(job.images)])
            start += len(job.images)


# ----- requests --------------------------------------------------------------------------------
def _whole_number(name: str, text: str) -> int:
    if not re.fullmatch(r"\s*[+-]?[0-9]{1,9}\s*", text):  # nine digits: more than any option allows
        raise OptionError(f"{name} must be a whole number, got {text[:40]!r}")
    return int(text)


def decode_options(query, reader) -> DecodeOptions:
    """The reader's decoding options with the request's query parameters laid over them.

    Raises:
        OptionError, UnknownCharacterError: an unknown parameter or a bad value (a 400).
    """
    given: dict[str, Any] = {}
    for name in query.keys():
        if name not in QUERY_OPTIONS:
            raise OptionError(f"unknown query parameter {name[:40]!r}; the options are {', '.join(QUERY_OPTIONS)}")
        values = query.getlist(name)
        if len(values) > 1:
            raise OptionError(f"query parameter {name!r} is given {len(values)} times; give it once")
        value = values[0]
        given[name] = _whole_number(name, value) if name in ("beam_width", "length") else value
    options = reader.options.replace(**given) if given else reader.options
    allowed_mask(reader.charset, options.allowed)  # characters the model cannot read fail here
    # An empty batch runs the reader's own checks of the options (a length its model cannot read,
    # ...) without any model work, so a bad value is a 400 before the request joins a batch.
    reader.predict_batch([], decoder=options.decoder, beam_width=options.beam_width, length=options.length,
                         allowed=options.allowed)
    return options


def media_type(request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def files_from_form(request, settings: ServeSettings) -> list[tuple[str, bytes]]:
    """The file fields of a multipart body, in order, as (name, bytes)."""
    files = []
    async with request.form(max_files=settings.max_files, max_fields=8) as form:
        for field, value in form.multi_items():
            if isinstance(value, str):
                raise ApiError(400, "bad_request", f"form field {field[:40]!r} is not a file; send images as "
                                                   "file fields (curl -F file=@img.png)")
            files.append(((value.filename or field)[:100], await value.read()))
    return files


async def request_images(request, settings: ServeSettings, many: bool) -> list[tuple[str, bytes]]:
    """The images a request carries, as (name for errors, bytes)."""
    kind = media_type(request)
    if kind == "multipart/form-data":
        if "boundary=" not in request.headers.get("content-type", ""):
            raise ApiError(400, "bad_request", "multipart/form-data without a boundary parameter")
        files = await files_from_form(request, settings)
        if not files:
            raise ApiError(400, "bad_request", "the form holds no file field; send the image as -F file=@img.png")
        if len(files) > 1 and not many:
            raise ApiError(400, "bad_request", f"/read takes one image, the form holds {len(files)}; "
                                               "use /read/batch for several")
        return files
    if many:
        raise ApiError(415, "bad_request", f"/read/batch takes multipart/form-data with one file field per "
                                           f"image, not {kind or 'a body without Content-Type'}")
    if not (kind.startswith("image/") or kind in RAW_TYPES):
        raise ApiError(415, "bad_request", f"Content-Type {kind or '(none)'!r} is not an image; send the bytes with "
                                           "Content-Type image/png (or another image/*, or application/octet-stream) "
                                           "or as multipart/form-data")
    body = await request.body()
    return [("body", body)]


def answer(pred, name: str) -> dict:
    """One prediction as JSON; an image that could not be read has its error (named ``name``)."""
    if not pred.ok:
        error = pred.error
        if error.startswith(pred.source + ": "):  # "<123 bytes>: ..." -> "body: ..." / "a.png: ..."
            error = f"{name}: {error[len(pred.source) + 2:]}"
        return {"text": None, "error": cli.one_line(ValueError(error))}
    return {"text": pred.text, "confidence": pred.confidence, "char_confidences": list(pred.char_confidences)}


async def read_request(request, runner: Runner, many: bool) -> list[tuple[str, Any]]:
    """Options and images of a request, then the model: (name, prediction) per image."""
    runner.arriving += 1
    try:
        options = decode_options(request.query_params, runner.reader)
        images = await request_images(request, runner.settings, many)
    finally:
        runner.arriving -= 1
    preds = await runner.submit([data for _, data in images], options)
    return [(name, pred) for (name, _), pred in zip(images, preds)]


# ----- ASGI middleware: guard the routes, measure every answer ----------------------------------
def header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class Guard:
    """In front of the routes: the API key, the body size limit and the body read timeout.

    A request with a wrong or missing key, or whose Content-Length is over the limit, is answered
    before any of its body is read; a body sent without a length (chunked) is counted as it arrives
    and refused once it passes the limit; a body still incomplete after ``read_timeout`` seconds
    gets 408. Each refusal closes the connection rather than reading on.
    """

    OPEN_ROUTES = ("/health",)  # a load balancer's health check needs no key

    def __init__(self, app, settings: ServeSettings, metrics: Metrics):
        self.app, self.settings, self.metrics = app, settings, metrics
        key = settings.api_key
        self.key_digest = hashlib.sha256(key.encode()).digest() if key else None

    def key_ok(self, scope) -> bool:
        given = header(scope, b"x-api-key")
        if given is None:
            auth = header(scope, b"authorization") or ""
            scheme, _, token = auth.partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else ""
        # Compare digests of equal length in constant time: neither the key nor its length leaks.
        return hmac.compare_digest(hashlib.sha256(given.encode("latin-1")).digest(), self.key_digest)

    def refusal(self, scope) -> ApiError | None:
        if self.key_digest is not None and scope["path"] not in self.OPEN_ROUTES and not self.key_ok(scope):
            error = ApiError(401, "unauthorized", "missing or wrong API key; send it as the X-API-Key header "
                                                  "or as Authorization: Bearer KEY", close=True)
            error.headers["WWW-Authenticate"] = "Bearer"
            return error
        length = header(scope, b"content-length")
        if length is not None and length.strip().isdigit() and int(length) > self.settings.max_body_bytes:
            return self.too_large(f"request body of {int(length):,} bytes")
        return None

    def too_large(self, what: str) -> ApiError:
        return ApiError(413, "too_large", f"{what} is over the limit of {self.settings.max_body_bytes:,} bytes",
                        close=True)

    def limited(self, receive: Callable) -> Callable:
        """``receive`` that counts the body's bytes and gives up on it after the read timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.read_timeout
        state = {"received": 0, "done": False}

        async def receive_limited():
            if state["done"]:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.0))
            except asyncio.TimeoutError:
                raise ApiError(408, "timeout", f"the request body did not arrive within "
                                               f"{self.settings.read_timeout:g} s", close=True) from None
            if message["type"] != "http.request":
                state["done"] = True
                return message
            state["received"] += len(message.get("body", b""))
            if state["received"] > self.settings.max_body_bytes:
                raise self.too_large("request body")
            state["done"] = not message.get("more_body", False)
            return message

        return receive_limited

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        error = self.refusal(scope)
        if error is None:
            return await self.app(scope, self.limited(receive), send)
        self.metrics.errors.labels(error.kind).inc()
        await error_response(error.status, error.message, error.headers)(scope, receive, send)


class Measure:
    """Counts every answer by route and status and times it (the outermost middleware)."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = scope["path"] if scope["path"] in ROUTES else "other"  # bounded label values
        status = 500  # what the client gets if the app fails before it answers
        start = time.perf_counter()

        async def send_measured(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_measured)
        finally:
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - start)


# ----- the app ---------------------------------------------------------------------------------
def error_response(status: int, message: str, headers: dict | None = None):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status, headers=headers)


def add_error_handlers(app, metrics: Metrics) -> None:
    """Every error answer is JSON {"error": one line}; anything unforeseen is a bare 500."""
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    from .errors import ImageError

    def failed(kind: str, status: int, message: str, headers: dict | None = None):
        metrics.errors.labels(kind).inc()
        return error_response(status, cli.one_line(ValueError(message)), headers)

    async def api_error(request, exc: ApiError):
        return failed(exc.kind, exc.status, exc.message, exc.headers)

    async def captcha_error(request, exc: CaptchaError):
        return failed("bad_image" if isinstance(exc, ImageError) else "bad_option", 400, cli.one_line(exc))

    async def http_error(request, exc: HTTPException):
        method, path = request.method, request.url.path[:100]
        if exc.status_code == 404:
            routes = ", ".join(f"{m} {p}" for p, m in ROUTES.items())
            return failed("not_found", 404, f"no route {path!r}; the routes are {routes}")
        if exc.status_code == 405:
            return failed("method_not_allowed", 405, f"{path} does not take {method}; use {ROUTES.get(path, 'GET')}",
                          exc.headers)
        return failed("bad_request", exc.status_code, str(exc.detail), exc.headers)

    async def disconnected(request, exc: ClientDisconnect):
        return failed("client_disconnected", 400, "the client went away before its request arrived whole")

    async def internal(request, exc: Exception):
        # Starlette re-raises after this answer, so the server logs the traceback; the client gets none.
        metrics.errors.labels("internal").inc()
        return error_response(500, "internal error")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(CaptchaError, captcha_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(ClientDisconnect, disconnected)
    app.add_exception_handler(Exception, internal)


def describe_service(reader, settings: ServeSettings) -> dict:
    """What GET / answers: the version, the model and how the service batches and limits."""
    sha = hashlib.sha256(reader.checkpoint_path.read_bytes()).hexdigest()
    return {
        "name": "crnn_captcha", "version": __version__,
        "model": {"checkpoint": reader.checkpoint_path.name, "sha256": sha, "backend": reader.backend,
                  "device": str(reader.device), "alphabet": reader.charset.chars,
                  "input_size": {"height": reader.preprocess.height, "width": reader.preprocess.width}},
        "decoding": {"decoder": reader.options.decoder, "beam_width": reader.options.beam_width,
                     "length": reader.options.length, "allowed": reader.options.allowed},
        "batching": {"on": settings.batching, "wait_ms": settings.batch_wait_ms, "max_batch": settings.max_batch},
        "limits": {"max_body_bytes": settings.max_body_bytes, "read_timeout_s": settings.read_timeout,
                   "max_files": settings.max_files, "max_queue": settings.max_queue},
        "api_key": settings.api_key is not None,
        "routes": [f"{m} {p}" for p, m in ROUTES.items()],
    }


def add_routes(app, runner: Runner, metrics: Metrics, info: dict) -> None:
    from fastapi import Request
    from starlette.responses import JSONResponse, Response

    @app.post("/read")
    async def read(request: Request):
        [(name, pred)] = await read_request(request, runner, many=False)
        result = answer(pred, name)
        if "error" in result:
            raise ApiError(400, "bad_image", result["error"])
        return JSONResponse(result)

    @app.post("/read/batch")
    async def read_batch(request: Request):
        pairs = await read_request(request, runner, many=True)
        results = [{"index": i, "name": name, **answer(pred, name)} for i, (name, pred) in enumerate(pairs)]
        return JSONResponse({"results": results, "failed": sum("error" in r for r in results)})

    @app.get("/health")
    async def health():
        if not runner.alive:
            return JSONResponse({"status": "unavailable"}, 503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics")
    async def prometheus():
        data, content_type = metrics.render()
        return Response(data, headers={"Content-Type": content_type})

    @app.get("/")
    async def root():
        return JSONResponse(info)


def create_app(reader, settings: ServeSettings = ServeSettings()):
    """The ASGI app serving ``reader`` (a :class:`~crnn_captcha.CaptchaReader`); run it with uvicorn.

    Raises:
        OptionError: the service's packages are missing.
    """
    missing = missing_packages()
    if missing:
        raise OptionError(f"serving needs {', '.join(missing)}; pip install \"crnn_captcha[serve]\"")
    from contextlib import asynccontextmanager

    from fastapi import FastAPI
    from starlette.middleware import Middleware

    metrics = Metrics()
    runner = (Batcher if settings.batching else Runner)(reader, metrics, settings)

    @asynccontextmanager
    async def lifespan(app):
        await runner.start()
        yield
        await runner.stop()

    app = FastAPI(title="crnn_captcha", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan, middleware=[Middleware(Measure, metrics=metrics),
                                                 Middleware(Guard, settings=settings, metrics=metrics)])
    app.state.runner, app.state.metrics = runner, metrics
    add_error_handlers(app, metrics)
    add_routes(app, runner, metrics, describe_service(reader, settings))
    return app


# ----- the command -----------------------------------------------------------------------------
def port_number(text: str) -> int:
    port = cli.positive_int(text)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)")
    return port


port_number.__name__ = "port number"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    ap = cli.make_parser(prog, "crnn_captcha.serve", __doc__)
    n = ap.add_argument_group("network and safety")
    n.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 opens the service to other machines (set an API key first)")
    n.add_argument("--port", type=port_number, default=8000, help="TCP port")
    n.add_argument("--api-key", help=f"require this key (X-API-Key header or Authorization: Bearer) on every route "
                                     f"but /health (default: the {API_KEY_ENV} environment variable, which keeps "
                                     "the key out of the process list; none: no key needed)")
    n.add_argument("--max-body-bytes", type=cli.positive_int, default=ServeSettings.max_body_bytes,
                   help="larger request bodies get 413 before they are read whole")
    n.add_argument("--read-timeout", type=cli.positive_float, default=ServeSettings.read_timeout,
                   help="seconds a request body may take to arrive; a slower one gets 408")
    n.add_argument("--max-connections", type=cli.positive_int, default=256,
                   help="connections and requests at once; beyond, 503")
    n.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="server log level (logs go to stderr)")
    n.add_argument("--no-access-log", action="store_true", help="no log line per request")
    cli.add_reader_options(ap)
    b = ap.add_argument_group("batching")
    b.add_argument("--no-batching", action="store_true", help="read each request on its own (for comparison)")
    b.add_argument("--batch-wait-ms", type=cli.non_negative_float, default=ServeSettings.batch_wait_ms,
                   help="longest wait for more requests to join a batch, while some are arriving (at most 1000)")
    b.add_argument("--max-batch", type=cli.positive_int, default=ServeSettings.max_batch,
                   help="images gathered from concurrent requests for one model call")
    b.add_argument("--max-queue", type=cli.positive_int, default=ServeSettings.max_queue,
                   help="requests waiting for the model; more get 503")
    b.add_argument("--max-files", type=cli.positive_int, default=ServeSettings.max_files,
                   help="images one /read/batch request may carry")
    b.add_argument("--threads", type=cli.positive_int, default=1,
                   help="CPU threads for the model; 1 leaves a core to the event loop, which parses HTTP "
                        "(on 2 cores, 1 thread served 1.5x-1.8x the requests/s of 2: docs/serving.md)")
    return ap


def settings_from_args(args: argparse.Namespace) -> ServeSettings:
    """The service settings the options ask for, checked; the API key may come from the environment."""
    key = args.api_key
    if key is None and API_KEY_ENV in os.environ:
        key = os.environ[API_KEY_ENV]
        if not key.strip():
            raise OptionError(f"{API_KEY_ENV} is set but empty; unset it or give it a key")
    if key is not None and (not key or not all(33 <= ord(c) < 127 for c in key)):
        raise OptionError("the API key must be printable ASCII without spaces (it travels in an HTTP header)")
    if args.batch_wait_ms > 1000:
        raise OptionError(f"--batch-wait-ms {args.batch_wait_ms:g} is over 1000; a batch waits milliseconds")
    return ServeSettings(api_key=key, max_body_bytes=args.max_body_bytes, read_timeout=args.read_timeout,
                         batching=not args.no_batching, batch_wait_ms=args.batch_wait_ms, max_batch=args.max_batch,
                         max_queue=args.max_queue, max_files=args.max_files, batch_size=args.batch_size)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; a host that does not resolve or a port in use is an OptionError."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as e:
        raise OptionError(f"--host {host!r}: not an address this machine can listen on ({e})") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as e:
        sock.close()
        raise OptionError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock


def is_loopback(sock: socket.socket) -> bool:
    try:
        return ipaddress.ip_address(sock.getsockname()[0]).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    missing = missing_packages()
    if missing:
        raise OptionError(f"serving needs {', '.join(missing)}; pip install \"crnn_captcha[serve]\"")
    import uvicorn

    sock = listen(args.host, args.port)  # before the model loads: a port in use fails at once
    try:
        import torch

        torch.set_num_threads(args.threads)  # the reader gives ONNX Runtime as many
        reader = cli.reader_from_args(args)
        app = create_app(reader, settings)
        if not is_loopback(sock) and settings.api_key is None:
            print(f"warning: listening on {args.host} without an API key: anyone who can reach port {args.port} "
                  f"can use the reader (set {API_KEY_ENV})", file=sys.stderr)
        mode = (f"batching up to {settings.max_batch} images, {settings.batch_wait_ms:g} ms" if settings.batching
                else "no batching")
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"serving {reader.checkpoint_path.name} ({reader.backend}, {mode}) on http://{host}:{args.port}",
              file=sys.stderr, flush=True)
        config = uvicorn.Config(app, log_level=args.log_level, access_log=not args.no_access_log,
                                limit_concurrency=args.max_connections, timeout_keep_alive=5,
                                timeout_graceful_shutdown=5, server_header=False)
        # The model, torch and the web stack are long-lived: frozen, the cyclic garbage collector stops
        # scanning them, and its full collections under load drop from about 90 ms to a few ms.
        gc.collect()
        gc.freeze()
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    return 0


main = cli.command(build_parser, run)

if __name__ == "__main__":
    raise SystemExit(main())
