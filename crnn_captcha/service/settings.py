"""The service's settings and its error type."""
from dataclasses import dataclass, fields

from ..errors import one_line
from ..read.ctc import DecodeOptions
from ..read.device import installed

API_KEY_ENV = "CRNN_CAPTCHA_API_KEY"


#: (import name, pip name) of what the service needs beyond the library
WEB_PACKAGES = (("fastapi", "fastapi"), ("uvicorn", "uvicorn"), ("prometheus_client", "prometheus-client"),
                ("python_multipart", "python-multipart"))


ROUTES = {"/": "GET", "/health": "GET or HEAD", "/metrics": "GET", "/read": "POST", "/read/batch": "POST"}


#: The query parameters of /read: the decoding options.
QUERY_OPTIONS = tuple(f.name for f in fields(DecodeOptions))


RAW_TYPES = ("application/octet-stream",)


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
    #: beam width x images one request may ask for: beam search's cost grows with both, and the model
    #: (one worker thread) serves every request in turn, so one costly request would stall the others
    max_beam_work: int = 400


class ApiError(Exception):
    """An answer other than 200: its status, a kind for the metrics and a one-line message."""

    def __init__(self, status: int, kind: str, message: str, close: bool = False):
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, one_line(self)
        # A refused request whose body may still be on its way: close the connection instead of
        # reading (and discarding) the rest of it.
        self.headers = {"Connection": "close"} if close else {}


def missing_packages() -> list[str]:
    """The pip names of the service's packages that are not installed."""
    return [pip for module, pip in WEB_PACKAGES if not installed(module)]


# ----- the app ---------------------------------------------------------------------------------
def error_response(status: int, message: str, headers: dict | None = None):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message}, status, headers=headers)


