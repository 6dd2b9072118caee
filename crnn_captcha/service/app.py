"""The FastAPI app around one CaptchaReader: routes, errors as JSON, the service description.

The routes and options are those of ``python -m crnn_captcha.serve`` (:mod:`crnn_captcha.serve`).
"""
# No ``from __future__ import annotations`` here: FastAPI reads the routes' annotations at run time,
# and the routes are closures whose ``Request`` is imported inside add_routes (FastAPI is optional).
import asyncio
import hashlib
import logging
import re
from typing import Any

from .._version import __version__
from ..errors import CaptchaError, OptionError, one_line
from ..read.ctc import DecodeOptions, allowed_mask
from .batching import Batcher, ReadQueue
from .guards import Guard, Measure
from .metrics import Metrics
from .settings import (
    QUERY_OPTIONS,
    RAW_TYPES,
    ROUTES,
    ApiError,
    ServeSettings,
    error_response,
    missing_packages,
)

log = logging.getLogger("crnn_captcha.serve")


# ----- requests --------------------------------------------------------------------------------
def _whole_number(name: str, text: str) -> int:
    if not re.fullmatch(r"\s*[+-]?[0-9]{1,9}\s*", text):  # nine digits: more than any option allows
        raise OptionError(f"{name} must be a whole number, got {text[:40]!r}")
    return int(text)


def _yes_no(name: str, text: str) -> bool:
    if text.lower() not in ("true", "false", "1", "0"):
        raise OptionError(f"{name} must be true or false, got {text[:40]!r}")
    return text.lower() in ("true", "1")


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
        given[name] = _whole_number(name, value) if name in ("beam_width", "length") else \
            _yes_no(name, value) if name == "ignore_case" else value
    options = reader.options.replace(**given)
    allowed_mask(reader.charset, options.allowed, options.ignore_case)  # characters the model cannot read fail here
    # An empty batch runs the reader's own checks of the options (a length its model cannot read,
    # ...) without any model work, so a bad value is a 400 before the request joins a batch.
    reader.predict_batch([], options=options)
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
        return {"text": None, "error": one_line(ValueError(error))}
    return {"text": pred.text, "confidence": pred.confidence, "char_confidences": list(pred.char_confidences)}


async def read_request(request, queue: ReadQueue, many: bool) -> list[tuple[str, Any]]:
    """Options and images of a request, then the model: (name, prediction) per image."""
    queue.arriving += 1
    try:
        options = decode_options(request.query_params, queue.reader)
        images = await request_images(request, queue.settings, many)
    finally:
        queue.arriving -= 1
    reads = len(images) * len(queue.reader.widths)  # a beam search per image and width
    work, most = options.beam_width * reads, queue.settings.max_beam_work
    if options.decoder == "beam" and work > most:
        raise ApiError(400, "bad_option", f"beam_width {options.beam_width} x {reads} reading(s) ({len(images)} image(s) "
                                          f"at {len(queue.reader.widths)} width(s)) is {work} units of beam search, more "
                                          f"than one request may ask for here ({most}); use a narrower beam or fewer images")
    try:
        preds = await queue.submit([data for _, data in images], options)
    except asyncio.CancelledError:  # the server stopped waiting for the model (shutting down): say so in JSON
        task = asyncio.current_task()
        if task is not None and hasattr(task, "uncancel"):
            task.uncancel()  # answered, not cancelled: nothing waiting on this task is misled
        raise ApiError(503, "busy", "server shutting down; send the request again") from None
    return [(name, pred) for (name, _), pred in zip(images, preds)]


def add_error_handlers(app, metrics: Metrics) -> None:
    """Every error answer is JSON {"error": one line}; anything unforeseen is a bare 500."""
    from starlette.exceptions import HTTPException
    from starlette.requests import ClientDisconnect

    from ..errors import ImageError

    def failed(kind: str, status: int, message: str, headers: dict | None = None):
        metrics.errors.labels(kind).inc()
        return error_response(status, one_line(ValueError(message)), headers)

    async def api_error(request, exc: ApiError):
        return failed(exc.kind, exc.status, exc.message, exc.headers)

    async def captcha_error(request, exc: CaptchaError):
        return failed("bad_image" if isinstance(exc, ImageError) else "bad_option", 400, one_line(exc))

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
                  "input_size": {"height": reader.preprocess.height, "width": reader.preprocess.width},
                  "widths": list(reader.widths)},
        "decoding": {"decoder": reader.options.decoder, "beam_width": reader.options.beam_width,
                     "length": reader.options.length, "allowed": reader.options.allowed,
                     "ignore_case": reader.options.ignore_case},
        "batching": {"on": settings.batching, "wait_ms": settings.batch_wait_ms, "max_batch": settings.max_batch},
        "limits": {"max_body_bytes": settings.max_body_bytes, "read_timeout_s": settings.read_timeout,
                   "max_files": settings.max_files, "max_queue": settings.max_queue,
                   "max_beam_work": settings.max_beam_work},
        "api_key": settings.api_key is not None,
        "routes": [f"{m} {p}" for p, m in ROUTES.items()],
    }


def add_routes(app, queue: ReadQueue, metrics: Metrics, info: dict) -> None:
    from fastapi import Request
    from starlette.responses import JSONResponse, Response

    @app.post("/read")
    async def read(request: Request):
        [(name, pred)] = await read_request(request, queue, many=False)
        result = answer(pred, name)
        if "error" in result:
            raise ApiError(400, "bad_image", result["error"])
        return JSONResponse(result)

    @app.post("/read/batch")
    async def read_batch(request: Request):
        pairs = await read_request(request, queue, many=True)
        results = [{"index": i, "name": name, **answer(pred, name)} for i, (name, pred) in enumerate(pairs)]
        return JSONResponse({"results": results, "failed": sum("error" in r for r in results)})

    @app.api_route("/health", methods=["GET", "HEAD"])  # HEAD: what many health checkers send
    async def health():
        if not queue.alive:
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
    queue = (Batcher if settings.batching else ReadQueue)(reader, metrics, settings)

    @asynccontextmanager
    async def lifespan(app):
        await queue.start()
        yield
        await queue.stop()

    app = FastAPI(title="crnn_captcha", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan, middleware=[Middleware(Measure, metrics=metrics),
                                                 Middleware(Guard, settings=settings, metrics=metrics)])
    app.state.queue, app.state.metrics = queue, metrics
    add_error_handlers(app, metrics)
    add_routes(app, queue, metrics, describe_service(reader, settings))
    return app
