"""The labelling page: a small local web app over one :class:`~.book.LabelBook`.

    GET  /                  the page (plain HTML, CSS and JavaScript shipped in the package)
    GET  /api/state         figures and the next images with the model's proposals
    GET  /api/image/NAME    an image of the folder (only the images being labelled)
    POST /api/answer        {"name": ..., "label": ...} or {"name": ..., "kind": "skip" | "unreadable"}
    POST /api/undo          take back the last answer

Every answer goes to the book at once (journal and manifest on disk before the reply). Answers are
taken one at a time, so two tabs on one page cannot interleave half-written answers. Errors are
JSON ``{"error": "one line"}`` with status 400 or 404.
"""
# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations (the
# Request type, imported where the app is made) when the app is made.
import asyncio
import json
import threading
from dataclasses import asdict
from importlib import resources
from typing import Any

from ..errors import CaptchaError, one_line
from .book import LabelBook

#: The page's files, by the name the page asks for, and their media types.
STATIC = {"label.js": "text/javascript", "label.css": "text/css"}
#: Image media types by file suffix.
MEDIA = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".bmp": "image/bmp",
         ".webp": "image/webp", ".tif": "image/tiff", ".tiff": "image/tiff", ".avif": "image/avif"}
#: The most images one state holds: the one being labelled and those after it.
SHOWN = 6
#: The largest request body taken (an answer is a few dozen bytes).
MAX_BODY = 4096


def _static(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


def create_label_app(book: LabelBook, loop: Any = None):
    """The FastAPI app of the page; ``loop``, where given (a :class:`~.loop.Retrainer`), is stepped
    after every answer and its status shown."""
    from fastapi import FastAPI, Request
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    answering = threading.Lock()

    def state() -> dict[str, Any]:
        if loop is not None:
            loop.step()  # a finished retraining's proposals come in; a due retraining starts
        return {"folder": str(book.folder), "manifest": str(book.manifest), "figures": book.figures(),
                "queue": [asdict(item) for item in book.queue(SHOWN)], "status": loop.status() if loop else ""}

    _json_errors(app)

    @app.get("/")
    def page():
        return Response(_static("label.html"), media_type="text/html; charset=utf-8")

    @app.get("/static/{name}")
    def static(name: str):
        if name not in STATIC:
            raise HTTPException(404, f"no file {name!r} here")
        return Response(_static(name), media_type=STATIC[name])

    @app.get("/api/state")
    def get_state():
        with answering:
            return state()

    @app.get("/api/image/{name}")
    def image(name: str):
        if name not in book.items or name in book.failed:  # only the folder's images, by the names listed
            raise HTTPException(404, f"{name!r} is not an image being labelled")
        return _file(book.folder / name)

    @app.post("/api/answer")
    async def answer(request: Request):
        name, kind, label = _answer_of(await _json_body(request))

        def apply() -> dict[str, Any]:  # disk writes, and perhaps new proposals: off the event loop
            with answering:
                {"skip": book.skip, "unreadable": book.unreadable}.get(kind, lambda n: book.answer(n, label))(name)
                return state()

        return await asyncio.to_thread(apply)

    @app.post("/api/undo")
    def undo():
        with answering:
            book.undo()
            return state()

    return app


def _file(path):
    from fastapi.responses import Response
    from starlette.exceptions import HTTPException

    try:
        data = path.read_bytes()
    except OSError as e:
        raise HTTPException(404, f"{path.name}: cannot be read ({e.strerror})") from None
    return Response(data, media_type=MEDIA.get(path.suffix.lower(), "application/octet-stream"),
                    headers={"Cache-Control": "no-store"})


def _json_errors(app) -> None:
    """Refusals as JSON ``{"error": one line}``: the book's (400) and the web layer's (their status)."""
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    @app.exception_handler(CaptchaError)
    async def refused(_request, e: CaptchaError):
        return JSONResponse({"error": one_line(e)}, status_code=400)

    @app.exception_handler(HTTPException)
    async def http_error(_request, e: HTTPException):
        return JSONResponse({"error": str(e.detail)}, status_code=e.status_code)


def _answer_of(body: dict[str, Any]) -> tuple[str, str, str]:
    """(image name, "label" | "skip" | "unreadable", label) from an answer's JSON body."""
    from starlette.exceptions import HTTPException

    name, kind, label = body.get("name"), body.get("kind", "label"), body.get("label", "")
    if not isinstance(name, str) or kind not in ("label", "skip", "unreadable"):
        raise HTTPException(400, 'give {"name": IMAGE, "label": TEXT} or {"name": IMAGE, "kind": "skip" or "unreadable"}')
    if kind == "label" and not isinstance(label, str):
        raise HTTPException(400, "label must be a string")
    return name, kind, label


async def _json_body(request) -> dict[str, Any]:
    from starlette.exceptions import HTTPException

    data = b""
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY:
            raise HTTPException(413, f"request body over {MAX_BODY} bytes")
    try:
        body = json.loads(data)
    except ValueError:
        raise HTTPException(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "the body must be a JSON object")
    return body
