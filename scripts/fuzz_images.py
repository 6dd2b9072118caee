"""Fuzz the reader's input path: damaged files of every format, odd arrays and tensors.

    python scripts/fuzz_images.py --n 5000 --seed 0            # thousands of cases, a summary
    python scripts/fuzz_images.py --n 300 --seed 1 --json fuzz.json

Each case is fed to ``CaptchaReader.predict``. A case passes when the reader either reads it (a
string comes back) or refuses it with the library's ``ImageError`` whose message is one line that
names the input. Anything else (another exception type, a message over several lines, a crash) is a
failure and is listed. The cases are drawn from a seeded generator, so a failure can be replayed:
the same ``--seed`` and ``--n`` give the same cases. The test suite runs a few hundred of them
(tests/test_inputs.py); this script runs thousands.

Cases: valid images in PNG, JPEG, WebP, AVIF, TIFF (8-bit, 16-bit, float), GIF, BMP, PPM and ICO,
and animated GIF, APNG and WebP of three frames (read across their frames by the shipped reader), then damaged by flipping bits, cutting, zeroing a stretch, splicing two files, repeating a chunk
or appending garbage; headers alone; arrays of odd shapes, dtypes, strides and values (NaN,
infinities, negatives, huge); tensors of odd dtypes (bfloat16, float8, complex, quantized), layouts
(sparse, nested), devices (meta) and shapes; PIL images in odd modes, closed or half-read.
"""
from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from PIL import Image, ImageDraw

FORMATS = [("PNG", {}), ("JPEG", {"quality": 90}), ("WEBP", {}), ("AVIF", {}), ("TIFF", {}), ("GIF", {}),
           ("BMP", {}), ("PPM", {}), ("ICO", {})]


def captcha_like(rng: random.Random, size=(200, 50)) -> Image.Image:
    """A small text-like picture to damage."""
    img = Image.new("RGB", size, tuple(rng.randint(180, 255) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for i in range(5):
        draw.text((15 + 35 * i, 15), rng.choice("2345678bcdefgmnpwxy"), fill=(rng.randint(0, 80),) * 3)
    draw.line([(0, rng.randint(0, size[1])), (size[0], rng.randint(0, size[1]))], fill=(40, 40, 40), width=2)
    return img


def encode(img: Image.Image, fmt: str, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **options)
    return buf.getvalue()


def valid_files(rng: random.Random) -> list[tuple[str, bytes]]:
    """One captcha-like image in every format this Pillow writes, plus 16-bit and float TIFFs."""
    img = captcha_like(rng)
    out = []
    for fmt, opts in FORMATS:
        try:
            out.append((fmt.lower(), encode(img if fmt != "GIF" else img.convert("P"), fmt, **opts)))
        except (OSError, KeyError, ValueError):
            pass  # a format this Pillow cannot write
    frames = [captcha_like(rng) for _ in range(3)]  # animated: damage can land in a later frame
    for fmt, name in (("GIF", "gif_animated"), ("PNG", "apng"), ("WEBP", "webp_animated")):
        try:
            out.append((name, encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)))
        except (OSError, KeyError, ValueError):
            pass
    gray = np.asarray(img.convert("L"))
    out.append(("tiff16", encode(Image.fromarray(gray.astype(np.uint16) * 257), "TIFF")))
    out.append(("tifffloat", encode(Image.fromarray(gray.astype(np.float32) / 255.0, "F"), "TIFF")))
    return out


def mutate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """One random kind of damage."""
    b = bytearray(data)
    kind = rng.choice(["flip", "flip", "cut", "zero", "splice", "repeat", "append", "head"])
    if kind == "flip":
        for _ in range(rng.randint(1, 24)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif kind == "cut":
        b = b[: rng.randrange(1, len(b))]
    elif kind == "zero":
        i = rng.randrange(len(b))
        b[i : i + rng.randint(1, 200)] = bytes(len(b[i : i + rng.randint(1, 200)]))
    elif kind == "splice":
        i = rng.randrange(len(b))
        b = b[:i] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64))) + b[i:]
    elif kind == "repeat":
        i = rng.randrange(len(b))
        b = b[:i] + b[i : i + 100] * rng.randint(2, 30) + b[i:]
    elif kind == "append":
        b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 500)))
    else:
        b = b[: rng.randint(8, 64)]
    return kind, bytes(b)


def odd_array(rng: random.Random) -> tuple[str, np.ndarray]:
    shape = rng.choice([(50, 200), (50, 200, 3), (50, 200, 4), (50, 200, 1), (50, 200, 2), (0, 200), (50,),
                        (1, 1), (2, 50, 200, 3), (3, 50, 200), (50, 200, 5), (4000, 4000 * 0 + 1), (1, 20000)])
    dtype = rng.choice([np.uint8, np.int8, np.uint16, np.int32, np.uint32, np.int64, np.float16, np.float32,
                        np.float64, np.bool_, np.complex64])
    with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values on purpose (float16, casts)
        arr = (np.random.default_rng(rng.randrange(2**32)).random(shape) * rng.choice([1, 255, 70000, -5])).astype(dtype)
    special = rng.choice(["", "", "nan", "inf", "fortran", "strided"])
    if special in ("nan", "inf") and np.issubdtype(arr.dtype, np.floating) and arr.size:
        arr.flat[rng.randrange(arr.size)] = np.nan if special == "nan" else np.inf
    elif special == "fortran":
        arr = np.asfortranarray(arr)
    elif special == "strided" and arr.ndim >= 2 and arr.shape[1] > 1:
        arr = arr[:, ::2]
    return f"array {arr.dtype} {arr.shape} {special}".strip(), arr


def odd_tensor(rng: random.Random) -> tuple[str, Any]:
    base = torch.rand(50, 200)
    kind = rng.choice(["bfloat16", "float16", "float8", "complex", "quantized", "sparse", "nested", "meta",
                       "chw3", "chw2", "chw5", "grad", "int64neg", "bool", "4d", "0d", "uint16"])
    with warnings.catch_warnings():  # torch's notes on prototype and deprecated tensor kinds
        warnings.simplefilter("ignore")
        t = {
            "bfloat16": lambda: base.to(torch.bfloat16), "float16": lambda: base.half(),
            "float8": lambda: base.to(torch.float8_e4m3fn), "complex": lambda: base.to(torch.complex64),
            "quantized": lambda: torch.quantize_per_tensor(base, 0.01, 0, torch.quint8),
            "sparse": lambda: base.to_sparse(), "nested": lambda: torch.nested.nested_tensor([base, base[:10]]),
            "meta": lambda: torch.empty(50, 200, device="meta"), "chw3": lambda: base.expand(3, 50, 200),
            "chw2": lambda: torch.rand(2, 50, 200), "chw5": lambda: torch.rand(5, 50, 200),
            "grad": lambda: base.clone().requires_grad_(), "int64neg": lambda: (base * 600 - 300).long(),
            "bool": lambda: base > 0.5, "4d": lambda: torch.rand(1, 3, 50, 200), "0d": lambda: torch.tensor(3.0),
            "uint16": lambda: (base * 65535).to(getattr(torch, "uint16", torch.int32)),
        }[kind]()
    return f"tensor {kind}", t


def odd_pil(rng: random.Random, files: list[tuple[str, bytes]]) -> tuple[str, Any]:
    img = captcha_like(rng)
    kind = rng.choice(["1", "CMYK", "LAB", "HSV", "YCbCr", "I", "F", "LA", "PA", "closed", "lazy-cut",
                       "transparency", "tiny"])
    if kind == "closed":
        img = Image.open(io.BytesIO(files[0][1]))
        img.load()
        img.close()
    elif kind == "lazy-cut":
        img = Image.open(io.BytesIO(files[0][1][: len(files[0][1]) // 2]))
    elif kind == "transparency":
        img.info["transparency"] = rng.choice(["x", 300, (1, 2), -1])
    elif kind == "tiny":
        img = img.resize((1, 1))
    else:
        try:
            img = img.convert(kind)
        except ValueError:
            img = img.convert("L")
    return f"PIL {kind}", img


def cases(seed: int, n: int) -> Iterator[tuple[str, Any]]:
    """``n`` seeded (name, input) cases: most are damaged files, the rest odd in-memory inputs."""
    rng = random.Random(seed)
    files = valid_files(rng)
    for i in range(n):
        roll = rng.random()
        if roll < 0.05:
            fmt, data = rng.choice(files)
            yield f"{i} valid {fmt}", data
        elif roll < 0.75:
            fmt, data = rng.choice(files)
            kind, bad = mutate(rng, data)
            yield f"{i} {fmt} {kind}", bad
        elif roll < 0.85:
            name, arr = odd_array(rng)
            yield f"{i} {name}", arr
        elif roll < 0.95:
            name, t = odd_tensor(rng)
            yield f"{i} {name}", t
        else:
            name, img = odd_pil(rng, files)
            yield f"{i} {name}", img


def check(reader, seed: int, n: int) -> dict[str, Any]:
    """Feed every case to ``reader.predict``; count reads, clean refusals and failures."""
    from crnn_captcha import ImageError

    read = refused = 0
    failures: list[str] = []
    for name, src in cases(seed, n):
        try:
            text = reader.predict(src).text
            assert isinstance(text, str)
            read += 1
        except ImageError as e:
            msg = str(e)
            if "\n" in msg or "\r" in msg or not msg.strip():
                failures.append(f"{name}: message is not one line: {msg!r}")
            else:
                refused += 1
        except Exception as e:  # the defect this script looks for
            failures.append(f"{name}: {type(e).__name__}: {str(e)[:200]!r}")
    return {"seed": seed, "n": n, "read": read, "refused": refused, "failures": failures}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=5000, help="number of cases")
    ap.add_argument("--seed", type=int, default=0, help="seed of the case generator")
    ap.add_argument("--checkpoint", help="checkpoint to read with (default: the shipped model)")
    ap.add_argument("--json", help="write the counts and failures here")
    args = ap.parse_args(argv)
    if args.n < 1:
        ap.error("--n must be at least 1")
    from crnn_captcha import CaptchaReader

    reader = CaptchaReader(args.checkpoint, device="cpu")
    t0 = time.perf_counter()
    with warnings.catch_warnings():  # PIL's notes on the damaged files it still decodes; counted below instead
        warnings.filterwarnings("ignore", module=r"PIL(\.|$)")
        result = check(reader, args.seed, args.n)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(f"{result['n']} cases (seed {result['seed']}): {result['read']} read, {result['refused']} refused with a "
          f"one-line ImageError, {len(result['failures'])} failures, {result['seconds']} s")
    for f in result["failures"][:50]:
        print("  FAIL " + f)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
