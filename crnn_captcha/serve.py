"""Read captchas over HTTP: a small FastAPI service around one CaptchaReader.

    pip install "crnn_captcha[serve]"
    python -m crnn_captcha.serve                         # the shipped model on http://127.0.0.1:8000
    crnn-captcha serve --checkpoint runs/mine/best.pt --port 9000
    CRNN_CAPTCHA_API_KEY=s3cret crnn-captcha serve       # every route but /health needs the key

    curl -s -H "Content-Type: image/png" --data-binary @226md.png http://127.0.0.1:8000/read
    curl -s -F file=@226md.png "http://127.0.0.1:8000/read?length=5"
    curl -s -F file=@a.png -F file=@b.png http://127.0.0.1:8000/read/batch

Routes: POST /read (one image: the raw body or a multipart file field; query options decoder,
beam_width, length, allowed, ignore_case), POST /read/batch (several multipart files, answers in order, a bad
image marked with its error), GET /health (open even with an API key), GET /metrics (Prometheus
text), GET / (version, model, alphabet, input size).

Safe defaults: listens on 127.0.0.1; bodies over --max-body-bytes get 413 before they are read whole;
a body that has not arrived within --read-timeout seconds gets 408; errors are JSON
{"error": "one line"}, never a traceback. Concurrent requests are batched: the images that arrive
within --batch-wait-ms (at most --max-batch of them) go to the model in one call, in a worker thread.
"""
import argparse
import gc
import ipaddress
import os
import socket
import sys

from . import cli
from .errors import OptionError
from .read.device import installed
from .service.app import create_app
from .service.protocol import protocol_class
from .service.settings import API_KEY_ENV, ServeSettings, missing_packages


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
                   help="seconds a request's headers, and then its body, may take to arrive: slower headers close the "
                        "connection, a slower body gets 408")
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
    b.add_argument("--max-beam-work", type=cli.positive_int, default=ServeSettings.max_beam_work,
                   help="beam width x images one request may ask for (beam search's cost grows with both)")
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
                         max_queue=args.max_queue, max_files=args.max_files, batch_size=args.batch_size,
                         max_beam_work=args.max_beam_work)


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
        if installed("torch"):  # for the PyTorch path; reading through ONNX Runtime needs no PyTorch
            import torch

            torch.set_num_threads(args.threads)
        reader = cli.reader_from_args(args, threads=args.threads)
        # what a full /read/batch of its own options costs: a beam search per image and width
        most = reader.options.beam_width * settings.max_files * len(reader.widths)
        if reader.options.decoder == "beam" and most > settings.max_beam_work:
            raise OptionError(f"--decoder beam --beam-width {reader.options.beam_width} with --max-files "
                              f"{settings.max_files} and {len(reader.widths)} width(s) lets a request ask for {most} "
                              "units of beam search, more than "
                              f"--max-beam-work {settings.max_beam_work}: lower one, or raise --max-beam-work")
        app = create_app(reader, settings)
        if not is_loopback(sock) and settings.api_key is None:
            print(f"warning: listening on {args.host} without an API key: anyone who can reach port {args.port} "
                  f"can use the reader (set {API_KEY_ENV})", file=sys.stderr)
        mode = (f"batching up to {settings.max_batch} images, {settings.batch_wait_ms:g} ms" if settings.batching
                else "no batching")
        host = f"[{args.host}]" if ":" in args.host else args.host
        print(f"serving {reader.checkpoint_path.name} ({reader.backend}, {mode}) on http://{host}:{args.port}",
              file=sys.stderr, flush=True)
        config = uvicorn.Config(app, http=protocol_class(settings.read_timeout), log_level=args.log_level,
                                access_log=not args.no_access_log,
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
