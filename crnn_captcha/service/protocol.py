"""uvicorn's HTTP/1.1 protocol with two changes: a deadline for a request's headers, and JSON for
the 400 it sends when a request cannot be parsed.

Without the deadline a connection that sends part of its headers, or nothing, is kept open for
ever: enough of them fill ``--max-connections`` and every other client gets 503. The app itself
never sees such a connection (there is no request yet), so the guard has to live here.
"""
from __future__ import annotations

import json


def protocol_class(header_timeout: float):
    """The protocol class for ``uvicorn.Config(http=...)``: a request's headers must arrive within
    ``header_timeout`` seconds of the connection opening, or of the first byte of a later request
    on it (between requests uvicorn's keep-alive time applies)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _headers_due = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._expect_headers()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not None and not self.cycle.response_complete:
                self._headers_in()  # a request is being answered: its headers are in
            elif self._headers_due is None:
                self._expect_headers()  # the next request has begun (after an answer)

        def connection_lost(self, exc) -> None:
            self._headers_in()
            super().connection_lost(exc)

        def _expect_headers(self) -> None:
            self._headers_due = self.loop.call_later(header_timeout, self._headers_late)

        def _headers_in(self) -> None:
            if self._headers_due is not None:
                self._headers_due.cancel()
                self._headers_due = None

        def _headers_late(self) -> None:
            self._headers_due = None
            if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
                self.logger.warning("closed a connection whose request headers did not arrive in %gs", header_timeout)
                self.transport.close()

        def send_400_response(self, msg: str) -> None:
            body = json.dumps({"error": "not a valid HTTP request"}).encode()
            headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
                       (b"content-length", str(len(body)).encode())]
            try:
                self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
                self.transport.write(self.conn.send(h11.Data(data=body)))
                self.transport.write(self.conn.send(h11.EndOfMessage()))
            except h11.LocalProtocolError:  # h11 cannot answer in this state: close, as uvicorn would
                pass
            self.transport.close()

    return GuardedH11Protocol
