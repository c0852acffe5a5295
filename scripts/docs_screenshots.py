"""Screenshots of the PR bodies and job summaries in docs/: what a reviewer sees on the first screen.

Each Markdown file that a real run wrote (docs/*-pr-body.md, docs/*-summary*.md, copied from the
act tests' output) is rendered the way GitHub renders Markdown (CommonMark with tables, raw HTML for
``<details>``, GitHub's light colours and fonts) and shot in headless Chromium at the size of a first
screen: 1012 px wide (a pull request's body column) and 900 px high. Images that live on GitHub
(the committed plots) cannot load here: one kept beside the Markdown as ``docs/<model>-<file name>``
(the trend plot the same run committed) is shown, any other is a labelled box. Mermaid blocks show
as code.

    python scripts/docs_screenshots.py          # writes docs/screenshots/<name>.png
    python scripts/docs_screenshots.py --check  # exit 1 when a screenshot is not of the current Markdown

Each PNG carries the sha256 of the Markdown it shows in a tEXt chunk (``mlops-actions:source``);
tests/test_docs.py compares it with docs/, so a changed PR body cannot keep an old screenshot.
Needs ``chromium`` (apt) and markdown-it-py (in the test venv).
"""

from __future__ import annotations

import argparse
import hashlib
import html
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
OUT = DOCS / "screenshots"
KEY = b"mlops-actions:source"
WIDTH, HEIGHT = 1012, 900
PATTERNS = ("*-pr-body.md", "*-summary*.md")

CSS = """
body { margin: 0; background: #fff; color: #1f2328; font: 14px/1.5 -apple-system, "Segoe UI", "Noto Sans",
  Helvetica, Arial, sans-serif; }
article { box-sizing: border-box; width: 1012px; padding: 16px 24px; }
h2 { font-size: 1.5em; border-bottom: 1px solid #d1d9e0; padding-bottom: .3em; margin: 16px 0; }
h3 { font-size: 1.25em; margin: 20px 0 12px; }
table { border-collapse: collapse; margin: 0 0 16px; display: block; overflow: auto; max-width: 100%; }
th, td { border: 1px solid #d1d9e0; padding: 6px 13px; }
th { font-weight: 600; background: #f6f8fa; }
tr:nth-child(2n) td { background: #f6f8fa; }
code { font: 85% ui-monospace, SFMono-Regular, Menlo, monospace; background: #eff1f3; padding: .2em .4em;
  border-radius: 6px; }
pre { background: #f6f8fa; padding: 16px; border-radius: 6px; overflow: auto; }
pre code { background: none; padding: 0; }
a { color: #0969da; text-decoration: none; }
details { margin: 0 0 16px; } summary { cursor: pointer; }
.img { display: inline-block; border: 1px dashed #8c959f; color: #59636e; padding: 24px 32px; margin: 4px 0;
  border-radius: 6px; background: #f6f8fa; }
sub { color: #59636e; }
"""


def sources() -> list[Path]:
    return sorted({p for pattern in PATTERNS for p in DOCS.glob(pattern)})


def digest(path: Path) -> str:
    """The Markdown's sha256, and that of each image kept beside it for the page."""
    h = hashlib.sha256(path.read_bytes())
    for kept in sorted(path.parent.glob(f"{path.stem.split('-', 1)[0]}-*.png")):
        if f"/{kept.name.split('-', 1)[1]}" in path.read_text(encoding="utf-8"):
            h.update(kept.read_bytes())
    return h.hexdigest()


def to_html(text: str, title: str, local: Path | None = None) -> str:
    """The page for ``text``; a remote image whose file is kept as ``local/<title's model>-<name>``
    is shown from there."""
    from markdown_it import MarkdownIt

    model = title.split("-", 1)[0]

    def image(match: re.Match) -> str:
        alt, url = match.group(1), match.group(2)
        name = url.split("?", 1)[0].rsplit("/", 1)[-1]
        kept = local / f"{model}-{name}" if local else None
        if kept and kept.is_file():
            return f'<img alt="{html.escape(alt)}" src="{kept.as_uri()}">'
        return f'<span class="img">🖼 {html.escape(alt or name)} <code>{html.escape(name)}</code> (on GitHub)</span>'

    text = re.sub(r"!\[([^\]]*)\]\((https?://[^)\s]+)\)", image, text)  # remote images cannot load here
    body = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough").render(text)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}</style></head><body><article>{body}</article></body></html>"
    )


def with_source(png: bytes, source_digest: str) -> bytes:
    """``png`` with a tEXt chunk naming the Markdown it shows, before IEND."""
    end = png.rindex(b"IEND") - 4
    data = KEY + b"\0" + source_digest.encode()
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    return png[:end] + chunk + png[end:]


def source_of(png: bytes) -> str:
    """The Markdown digest a screenshot carries ('' when none)."""
    pos = 8
    while pos + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[pos : pos + 8])
        data = png[pos + 8 : pos + 8 + length]
        if kind == b"tEXt" and data.startswith(KEY + b"\0"):
            return data[len(KEY) + 1 :].decode()
        pos += 12 + length
    return ""


def shoot(md: Path, chromium: str, scratch: Path) -> Path:
    page = scratch / f"{md.stem}.html"
    page.write_text(to_html(md.read_text(encoding="utf-8"), md.stem, md.parent), encoding="utf-8")
    shot = scratch / f"{md.stem}.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--window-size={WIDTH},{HEIGHT}",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    out = OUT / f"{md.stem}.png"
    out.write_bytes(with_source(shot.read_bytes(), digest(md)))
    return out


def stale() -> list[str]:
    """docs/ Markdown files whose screenshot is missing or of another text."""
    found = []
    for md in sources():
        png = OUT / f"{md.stem}.png"
        if not png.is_file() or source_of(png.read_bytes()) != digest(md):
            found.append(md.name)
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only check that every screenshot shows the current text")
    args = ap.parse_args(argv)
    if args.check:
        left = stale()
        for name in left:
            print(f"docs/{name}: its screenshot is missing or older; run python scripts/docs_screenshots.py")
        return 1 if left else 0
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not chromium:
        print("chromium not found: apt-get install -y chromium", file=sys.stderr)
        return 2
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        for md in sources():
            print(f"{md.relative_to(ROOT)} → {shoot(md, chromium, Path(scratch)).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
