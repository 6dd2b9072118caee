"""Checks on every request before it reaches the app (API key, body size), and timing."""
import asyncio
import hashlib
import hmac
import time
from typing import Callable

from .metrics import Metrics
from .settings import ROUTES, ApiError, ServeSettings, error_response


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


