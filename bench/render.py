"""Rendering time per fax page: a text PDF, a scanned PDF and a phone photo.

* text PDF     the corpus's 4-page pdfLaTeX document (multipage-4-pages-pdflatex-outline.pdf)
* scanned PDF  one A4 page that is a 300 dpi greyscale JPEG of typed text (2480 × 3508),
               made here with Pillow and wrapped losslessly by img2pdf, as scanners make them
* photo        a 12 MP JPEG (4032 × 3024, quality 90), made here: gradients and noise

Each is rendered to G4 fax pages at every quality, `--runs` times (median), two ways:
`in process` calls mailgw.documents.tasks.render_task directly (the work alone); `sandbox` goes
through mailgw.documents.checks.render, as intake does (a warm worker, the document handed over
in a memfd, limits set, the JSON answer with the PDF back). Time is wall-clock per page.

    nice .venv/bin/python bench/render.py             # 20 runs, about a minute
    nice .venv/bin/python bench/render.py --smoke     # 2 runs: proves it runs
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

from mailgw.documents import checks as documents  # noqa: E402
from mailgw.documents import sandbox  # noqa: E402
from mailgw.documents.render import QUALITIES  # noqa: E402
from mailgw.documents.sandbox import Limits  # noqa: E402
from mailgw.documents.tasks import render_task  # noqa: E402

CORPUS = Path(os.environ.get("MAILGW_CORPUS") or ROOT.parent / "shared" / "corpus")
TEXT_PDF = "multipage-4-pages-pdflatex-outline.pdf"


def text_pdf() -> bytes:
    for base in (CORPUS, ROOT / "tests" / "corpus"):
        path = base / "pdfs" / TEXT_PDF
        if path.is_file():
            return path.read_bytes()
    from mailgw.documents.samples import make_pdf

    print(f"({TEXT_PDF} not found: a generated 4-page text PDF instead)", file=sys.stderr)
    return make_pdf([[f"line {n} of page {p}" for n in range(40)] for p in range(4)])


def scanned_pdf() -> bytes:
    import img2pdf

    page = Image.new("L", (2480, 3508), 235)
    draw = ImageDraw.Draw(page)
    rng = random.Random(7)
    for line in range(70):
        y = 250 + line * 44
        x = 250
        while x < 2200:
            word = rng.randint(40, 220)
            draw.rectangle((x, y, x + word, y + 22), fill=rng.randint(10, 60))
            x += word + 30
    page = page.filter(ImageFilter.GaussianBlur(1.2))
    out = io.BytesIO()
    page.save(out, "JPEG", quality=75, dpi=(300, 300))
    return bytes(img2pdf.convert(out.getvalue()))


def photo() -> bytes:
    width, height = 4032, 3024
    gradient = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 40)
    rgb = Image.merge("RGB", (gradient, noise, gradient.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=90)
    return out.getvalue()


def measure(data: bytes, kind: str, quality: str, runs: int) -> tuple[int, float, float]:
    """(pages, median ms per page in process, median ms per page through the sandbox)."""
    head = json.dumps({"kind": kind, "quality": quality, "output": "pdf"}).encode() + b"\n"
    inline, boxed = [], []
    pages = 0
    for _ in range(runs):
        start = time.perf_counter()
        answer = render_task(head + data)
        inline.append(time.perf_counter() - start)
        start = time.perf_counter()
        boxed_answer = documents.render(data, kind, Limits(), quality, output="pdf")
        boxed.append(time.perf_counter() - start)
        pages = int(answer["pages"])  # type: ignore[call-overload]
        assert answer["usable"] and boxed_answer["pages"] == pages, boxed_answer
    return pages, statistics.median(inline) / pages * 1000, statistics.median(boxed) / pages * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="2 runs")
    args = parser.parse_args()
    runs = 2 if args.smoke else args.runs
    inputs = [("text PDF", text_pdf(), "pdf"), ("scanned PDF (300 dpi)", scanned_pdf(), "pdf"),
              ("photo JPEG (12 MP)", photo(), "picture")]
    sandbox.prestart(1)
    print(f"Rendering to fax pages, median of {runs} runs, ms per page "
          f"({platform.python_version()}, {os.cpu_count()} CPUs)\n")
    print("| document | size | pages | quality | in process | sandbox |")
    print("|---|---|---|---|---|---|")
    for name, data, kind in inputs:
        for quality in QUALITIES:
            pages, inline, boxed = measure(data, kind, quality, runs)
            print(f"| {name} | {len(data) // 1024} KB | {pages} | {quality} | "
                  f"{inline:.0f} | {boxed:.0f} |", flush=True)
    sandbox.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
