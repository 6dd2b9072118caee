"""Load-test the HTTP service on this machine: a bounded number of reads at a given concurrency.

    python scripts/load_test.py --start --data data/splits/test.csv --requests 2000 --concurrency 32
    python scripts/load_test.py --start --data data/splits/test.csv --requests 2000 --concurrency 32 -- --no-batching
    python scripts/load_test.py --url http://127.0.0.1:8000 --data ../shared/data/captcha_v2 --json load.json

``--start`` runs ``python -m crnn_captcha.serve`` in a subprocess on a free loopback port (the options
after ``--`` go to it) and stops it afterwards; ``--url`` tests a server already running, on this
machine only (loopback addresses; anything else is refused). The images are real captchas from a
manifest (CSV/TSV ``path,label`` or JSON lines) or a folder (labels from the file names).

First every distinct image is read once, one request at a time: its answer is the reference. Then
``--warmup`` untimed reads at the run's concurrency (a batch of a new size costs more the first
time), then the timed run: ``--requests`` reads from ``--concurrency`` threads, each on its own
kept-alive connection, cycling through the images. Every answer is checked: an error (a status
other than 200, or no answer), a text that differs from the one-at-a-time reference (the service
mixed something up under load) and a text that differs from the label (the model's own misreads:
the same images every run). Prints requests/s, latency percentiles, those counts and the server's
resident memory (``process_resident_memory_bytes`` from /metrics) at the start, before the timed
run and after it. Exits 1 if any request, warm-up included, failed or differed from its reference.
The client uses only the standard library.
"""
from __future__ import annotations

import argparse
import csv
import http.client
import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
LOOPBACK_NAMES = ("localhost",)
API_KEY_ENV = "CRNN_CAPTCHA_API_KEY"


class Refused(Exception):
    """A usage error: one line, exit 2."""


# ----- inputs ----------------------------------------------------------------------------------
def load_samples(data: str) -> list[tuple[str, str, bytes]]:
    """(name, label, bytes) for each image of a manifest or folder."""
    src = Path(data)
    if not src.exists():
        raise Refused(f"--data {data}: no such file or folder")
    if src.is_dir():
        paths = sorted(p for p in src.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        rows = [(p, p.stem) for p in paths]
    else:
        rows = manifest_rows(src)
    if not rows:
        raise Refused(f"--data {data}: holds no images")
    samples = []
    for path, label in rows:
        try:
            samples.append((path.name, label, path.read_bytes()))
        except OSError as e:
            raise Refused(f"{path}: {e.strerror}") from None
    return samples


def manifest_rows(path: Path) -> list[tuple[Path, str]]:
    """(image path, label) rows; relative paths are taken from the manifest's folder."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            records = list(csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix == ".tsv" else ","))
        return [((path.parent / r["path"]).resolve(), r["label"]) for r in records]
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise Refused(f"{path}: not a manifest (UTF-8 CSV/TSV with path and label columns, or JSON lines)") from None


def loopback_url(url: str) -> tuple[str, int]:
    """(host, port) of an http:// URL on this machine; any other host is refused."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    try:
        local = host in LOOPBACK_NAMES or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    if parts.scheme != "http" or not local:
        raise Refused(f"--url {url}: only http:// on this machine (127.0.0.1, ::1, localhost) may be load-tested")
    try:
        return host, parts.port or 80
    except ValueError:
        raise Refused(f"--url {url}: bad port") from None


# ----- the server ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(server_args: list[str], log_path: Path) -> tuple[subprocess.Popen, int, list[str]]:
    port = free_port()
    cmd = [sys.executable, "-m", "crnn_captcha.serve", "--port", str(port), "--log-level", "warning", *server_args]
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    return proc, port, cmd


def wait_healthy(host: str, port: int, proc: subprocess.Popen | None, log_path: Path | None) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log_path.read_text()[-1500:] if log_path else ""
            raise Refused(f"the server exited with {proc.returncode}: {tail.strip()}")
        client = Client(host, port, {})
        try:
            if request(client, "GET", "/health")[0] == 200:
                return
        except (OSError, http.client.HTTPException):
            pass
        finally:
            client.close()
        time.sleep(0.25)
    raise Refused(f"no healthy server at {host}:{port} within 120 s")


# ----- the client ------------------------------------------------------------------------------
class Client:
    """One kept-alive connection (reopened after a failure)."""

    def __init__(self, host: str, port: int, headers: dict, timeout: float = 30.0):
        self.host, self.port, self.headers, self.timeout = host, port, headers, timeout
        self.conn: http.client.HTTPConnection | None = None

    def connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def request(client: Client, method: str, path: str, body: bytes | None = None,
            content_type: str | None = None) -> tuple[int, bytes]:
    headers = dict(client.headers)
    if content_type:
        headers["Content-Type"] = content_type
    try:
        conn = client.connection()
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.getheader("connection", "").lower() == "close":
            client.close()
        return resp.status, data
    except (OSError, http.client.HTTPException):
        client.close()
        raise


def read_text(client: Client, path: str, image: bytes) -> tuple[str | None, str | None]:
    """(text, None) or (None, what went wrong) for one /read."""
    try:
        status, data = request(client, "POST", path, image, "image/png")
    except (OSError, http.client.HTTPException) as e:
        return None, f"{type(e).__name__}"
    if status != 200:
        return None, f"HTTP {status}"
    try:
        return json.loads(data)["text"], None
    except (ValueError, KeyError):
        return None, "bad JSON"


def server_metrics(host: str, port: int, headers: dict) -> dict[str, float]:
    """A few numbers from /metrics (sums over labels), on a connection of its own."""
    client = Client(host, port, headers)
    try:
        status, data = request(client, "GET", "/metrics")
    finally:
        client.close()
    if status != 200:
        raise Refused(f"GET /metrics answered {status}; give the API key with --api-key or ${API_KEY_ENV}")
    wanted = ("process_resident_memory_bytes", "crnn_captcha_batch_images_sum", "crnn_captcha_batch_images_count",
              "process_cpu_seconds_total")
    out = dict.fromkeys(wanted, 0.0)
    for line in data.decode().splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in out:
            out[name] += float(line.rsplit(" ", 1)[1])
    return out


# ----- the run ---------------------------------------------------------------------------------
def reference_pass(client: Client, path: str, samples) -> list[str | None]:
    """Each distinct image read once, one request at a time: the texts the timed run must match."""
    texts = []
    for name, _, image in samples:
        text, error = read_text(client, path, image)
        if error:
            raise Refused(f"reference read of {name} failed: {error}")
        texts.append(text)
    return texts


def timed_run(host: str, port: int, headers: dict, path: str, samples, requests: int, concurrency: int):
    """Send ``requests`` reads from ``concurrency`` threads; returns per-request rows and seconds."""
    rows: list[tuple[int, float, str | None, str | None]] = []  # (sample, seconds, text, error)
    lock = threading.Lock()
    next_index = iter(range(requests))

    def worker():
        client = Client(host, port, headers)
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                break
            k = i % len(samples)
            start = time.perf_counter()
            text, error = read_text(client, path, samples[k][2])
            row = (k, time.perf_counter() - start, text, error)
            with lock:
                rows.append(row)
        client.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return rows, time.perf_counter() - start


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(round(q / 100.0 * len(sorted_values) + 0.4999)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarise(rows, seconds: float, samples, reference, before: dict, after: dict) -> dict:
    latencies = sorted(r[1] * 1000.0 for r in rows)
    errors: dict[str, int] = {}
    for r in rows:
        if r[3]:
            errors[r[3]] = errors.get(r[3], 0) + 1
    answered = [r for r in rows if not r[3]]
    wrong = [r for r in answered if r[2] != samples[r[0]][1]]
    calls = after["crnn_captcha_batch_images_count"] - before["crnn_captcha_batch_images_count"]
    images = after["crnn_captcha_batch_images_sum"] - before["crnn_captcha_batch_images_sum"]
    mb = 1024 * 1024
    return {
        "requests": len(rows), "seconds": round(seconds, 3), "requests_per_s": round(len(rows) / seconds, 1),
        "latency_ms": {q: round(percentile(latencies, p), 2) for q, p in (("p50", 50), ("p95", 95), ("p99", 99))}
        | {"max": round(latencies[-1], 2) if latencies else None},
        "errors": sum(errors.values()), "errors_by_kind": errors,
        "differ_from_reference": sum(r[2] != reference[r[0]] for r in answered),
        "wrong_vs_label": len(wrong), "wrong_images": sorted({samples[r[0]][0] for r in wrong}),
        "model_calls": int(calls), "mean_images_per_call": round(images / calls, 2) if calls else None,
        "server_cpu_s": round(after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"], 2),
        "rss_before_mb": round(before["process_resident_memory_bytes"] / mb, 1),
        "rss_after_mb": round(after["process_resident_memory_bytes"] / mb, 1),
        "rss_growth_mb": round((after["process_resident_memory_bytes"] - before["process_resident_memory_bytes"]) / mb, 1),
    }


def report(r: dict) -> str:
    lat = r["latency_ms"]
    wrong = f" ({', '.join(r['wrong_images'])})" if r["wrong_images"] else ""
    return "\n".join([
        f"requests      {r['requests']} at concurrency {r['concurrency']}, {r['images']} distinct images",
        f"throughput    {r['requests_per_s']} requests/s ({r['seconds']} s)",
        f"latency (ms)  p50 {lat['p50']}  p95 {lat['p95']}  p99 {lat['p99']}  max {lat['max']}",
        f"errors        {r['errors']} {r['errors_by_kind'] or ''}".rstrip(),
        f"texts         {r['differ_from_reference']} differ from the one-at-a-time read; "
        f"{r['wrong_vs_label']} differ from the label{wrong}",
        f"batching      {r['model_calls']} model calls, {r['mean_images_per_call']} images per call",
        f"server        RSS {r['rss_start_mb']} MB at start, {r['rss_before_mb']} MB after {r['warmup']} warm-up "
        f"reads, {r['rss_after_mb']} MB after the run: growth {r['rss_growth_mb']} MB in the run, "
        f"{round(r['rss_after_mb'] - r['rss_start_mb'], 1)} MB in all; {r['server_cpu_s']} CPU s in the run",
    ])


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python scripts/load_test.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--start", action="store_true", help="start a server on a free loopback port (options after -- go to it)")
    where.add_argument("--url", help="a running server on this machine, e.g. http://127.0.0.1:8000")
    ap.add_argument("--data", required=True, help="manifest (path,label) or folder of labelled captchas")
    ap.add_argument("--requests", type=int, default=500, help="reads in the timed run (default: 500)")
    ap.add_argument("--concurrency", type=int, default=8, help="threads sending at once (default: 8)")
    ap.add_argument("--warmup", type=int, help="untimed reads at the run's concurrency before it, so first-time "
                                               "costs (larger batch shapes) stay out of the figures "
                                               "(default: 4 per thread; 0 for none)")
    ap.add_argument("--query", default="", help="decoding options for every read, e.g. length=5")
    ap.add_argument("--api-key", help=f"the server's key (default: ${API_KEY_ENV} if set)")
    ap.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    return ap


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    server_args = argv[argv.index("--") + 1:] if "--" in argv else []
    args = build_parser().parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if server_args and not args.start:
        raise Refused("options after -- are for a server started with --start")
    if not 1 <= args.requests <= 1_000_000:
        raise Refused(f"--requests {args.requests}: give 1 to 1,000,000")
    if not 1 <= args.concurrency <= 1024:
        raise Refused(f"--concurrency {args.concurrency}: give 1 to 1024")
    if args.warmup is None:
        args.warmup = 4 * args.concurrency
    if not 0 <= args.warmup <= 1_000_000:
        raise Refused(f"--warmup {args.warmup}: give 0 to 1,000,000")
    if any(a in ("--host", "--port") for a in server_args):
        raise Refused("the started server listens on 127.0.0.1 and a free port of its own; leave out --host/--port")
    return args, server_args


def run(args: argparse.Namespace, server_args: list[str]) -> dict:
    samples = load_samples(args.data)
    key = args.api_key or os.environ.get(API_KEY_ENV)
    headers = {"X-API-Key": key} if key else {}
    path = "/read" + (f"?{args.query}" if args.query else "")
    proc, log_path, cmd = None, None, None
    if args.start:
        log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"crnn_captcha_load_test_{os.getpid()}.log"
        proc, port, cmd = start_server(server_args, log_path)
        host = "127.0.0.1"
    else:
        host, port = loopback_url(args.url)
    try:
        wait_healthy(host, port, proc, log_path)
        probe = Client(host, port, headers)
        reference = reference_pass(probe, path, samples)
        probe.close()
        at_start = server_metrics(host, port, headers)
        warm_rows = timed_run(host, port, headers, path, samples, args.warmup, args.concurrency)[0]
        before = server_metrics(host, port, headers)
        load_before = os.getloadavg()
        rows, seconds = timed_run(host, port, headers, path, samples, args.requests, args.concurrency)
        after = server_metrics(host, port, headers)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    result = summarise(rows, seconds, samples, reference, before, after)
    result.update(warmup_errors=sum(bool(r[3]) or r[2] != reference[r[0]] for r in warm_rows),
                  rss_start_mb=round(at_start["process_resident_memory_bytes"] / 1024 / 1024, 1), warmup=args.warmup,
                  concurrency=args.concurrency, images=len(samples), data=args.data, query=args.query,
                  server=" ".join(cmd[1:]) if cmd else args.url, loadavg_before=[round(x, 2) for x in load_before],
                  cpus=os.cpu_count())
    return result


def main(argv: list[str] | None = None) -> int:
    try:
        args, server_args = parse_args(argv)
        result = run(args, server_args)
    except Refused as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (OSError, http.client.HTTPException) as e:
        print(f"error: lost the server ({type(e).__name__}: {e})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(f"server        {result['server']}")
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if result["warmup_errors"]:
        print(f"warm-up       {result['warmup_errors']} reads failed or differed from the reference")
    return 1 if result["errors"] or result["differ_from_reference"] or result["warmup_errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
