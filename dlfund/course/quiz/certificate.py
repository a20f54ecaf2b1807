"""The certificate for a passed quiz or exam: one self-contained HTML file, and its verification.

The file shows the name, the quiz, the date, the score, the pass mark, the question ids and a
checksum, and embeds the same fields as JSON. The checksum is the sha256 of those fields in a
canonical JSON form; :func:`verify_certificate` recomputes it and checks that every visible field
still says what the JSON says, so an edited score or name is detected. It is an integrity check,
not a signature: anyone with the code can make a certificate, and none proves who answered. That
is why the certificate says what it is: a self-assessment, not an accredited qualification.

Verify one from the shell with ``python -m dlfund.course.quiz.verify FILE``.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import unicodedata
from datetime import datetime
from html.parser import HTMLParser
from importlib.metadata import version
from pathlib import Path
from typing import Any

from dlfund.course import manifest
from dlfund.course.quiz.report import Report
from dlfund.utils.io import atomic_write_text

FORMAT = 1
NOTICE = (
    "This is a self-assessment, not an accredited qualification. The quiz was taken "
    "unsupervised on the learner's own computer. The checksum detects edits to this file; "
    "it is not a signature and does not prove who answered."
)
FIELDS = (
    "format",
    "name",
    "title",
    "date",
    "issued",
    "correct",
    "total",
    "pass_mark_percent",
    "question_ids",
    "seed",
    "dlfund_version",
)
MAX_NAME = 100


class CertificateError(ValueError):
    """A certificate that does not verify; the message says what does not match."""


def default_dir() -> Path:
    """``runs/certificates`` in the course repository (git-ignored), else in the current folder."""
    root = manifest.RUNS_DIR if manifest.UNITS_DIR.is_dir() else Path.cwd() / "runs"
    return root / "certificates"


def clean_name(name: str | None) -> str:
    """The name as printed: whitespace collapsed, control characters removed, 1..100 characters."""
    text = "".join(ch for ch in (name or "") if unicodedata.category(ch)[0] != "C" or ch in " \t")
    text = " ".join(text.split())
    if not text:
        raise ValueError("no name given")
    if len(text) > MAX_NAME:
        raise ValueError(f"the name has {len(text)} characters; at most {MAX_NAME} fit on a certificate")
    return text


def checksum(fields: dict[str, Any]) -> str:
    """sha256 (hex) of the fields as canonical JSON: sorted keys, no spaces, UTF-8."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _percent(numerator: int, denominator: int) -> str:
    text = f"{100 * numerator / denominator:.1f}"
    return (text[:-2] if text.endswith(".0") else text) + "%"


def visible(fields: dict[str, Any], digest: str) -> dict[str, str]:
    """The text each ``data-field`` element of the certificate shows, from the fields."""
    return {
        "name": fields["name"],
        "title": fields["title"],
        "date": fields["date"],
        "score": f"{fields['correct']} of {fields['total']} correct ({_percent(fields['correct'], fields['total'])})",
        "pass_mark": f"{fields['pass_mark_percent']}%",
        "question_ids": ", ".join(fields["question_ids"]),
        "seed": str(fields["seed"]),
        "version": f"dlfund {fields['dlfund_version']}, certificate format {fields['format']}",
        "checksum": digest,
        "notice": NOTICE,
    }


_STYLE = """
body { font-family: Georgia, 'Times New Roman', serif; background: #f4f1ea; color: #222; margin: 0; }
main { max-width: 46rem; margin: 2.5rem auto; background: #fff; padding: 2.5rem 3rem;
       border: 6px double #6b5b3e; }
h1 { text-align: center; font-size: 1.9rem; margin: 0.2rem 0 1.2rem; letter-spacing: 0.03em; }
.course, .lead { text-align: center; color: #555; margin: 0.3rem 0; }
.name { text-align: center; font-size: 1.7rem; font-weight: bold; margin: 0.4rem 0; }
.title { text-align: center; font-size: 1.2rem; font-style: italic; margin: 0.4rem 0 1.4rem; }
table { width: 100%; border-collapse: collapse; font-size: 0.95rem; }
th { text-align: left; vertical-align: top; width: 11rem; padding: 0.3rem 0.6rem 0.3rem 0; color: #555; }
td { padding: 0.3rem 0; word-break: break-word; }
code { font-size: 0.8rem; }
.notice { margin-top: 1.6rem; padding: 0.8rem 1rem; background: #f8f6f0; border-left: 4px solid #6b5b3e;
          font-size: 0.9rem; }
""".strip()


def render(fields: dict[str, Any], digest: str) -> str:
    """The certificate's HTML: self-contained (inline style, no scripts run, no external files),
    every field escaped."""
    shown = {key: html.escape(value) for key, value in visible(fields, digest).items()}
    # JSON inside <script>: escape <, > and & so that no text can close the element
    embedded = (
        json.dumps({**fields, "checksum": digest}, sort_keys=True, ensure_ascii=False, indent=1)
        .replace("&", "\\u0026")
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
    )
    rows = [
        ("Date", "date"),
        ("Score", "score"),
        ("Pass mark", "pass_mark"),
        ("Questions", "question_ids"),
        ("Seed", "seed"),
        ("Version", "version"),
    ]
    table = "\n".join(f'<tr><th>{label}</th><td data-field="{key}">{shown[key]}</td></tr>' for label, key in rows)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>dlfund certificate of self-assessment: {shown["name"]}</title>
<style>
{_STYLE}
</style>
</head>
<body>
<main>
<p class="course">dlfund: a deep-learning course that runs</p>
<h1>Certificate of self-assessment</h1>
<p class="lead">This certifies that</p>
<p class="name" data-field="name">{shown["name"]}</p>
<p class="lead">reached the pass mark in</p>
<p class="title" data-field="title">{shown["title"]}</p>
<table>
{table}
<tr><th>Checksum (sha256)</th><td><code data-field="checksum">{shown["checksum"]}</code></td></tr>
</table>
<p class="notice" data-field="notice">{shown["notice"]}</p>
</main>
<script type="application/json" id="dlfund-certificate">
{embedded}
</script>
</body>
</html>
"""


def certificate_fields(report: Report, name: str, now: datetime | None = None) -> dict[str, Any]:
    """The canonical fields of a certificate for ``report``."""
    now = (now or datetime.now()).astimezone()
    return {
        "format": FORMAT,
        "name": clean_name(name),
        "title": report.title,
        "date": now.date().isoformat(),
        "issued": now.isoformat(timespec="seconds"),
        "correct": report.correct,
        "total": report.total,
        "pass_mark_percent": int(report.pass_mark * 100),
        "question_ids": report.question_ids,
        "seed": report.seed,
        "dlfund_version": version("dlfund"),
    }


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:40] or "learner"


def write_certificate(
    report: Report, name: str, out_dir: str | Path | None = None, now: datetime | None = None
) -> Path:
    """Write the certificate of a passed, complete ``report`` (atomically) and return its path:
    ``<out_dir>/<name>-<quiz>-<date-time>-<checksum prefix>.html``."""
    if not report.passed:
        raise ValueError(
            f"no certificate: {report.title} was not passed "
            f"({report.correct} of {report.total}, answered {report.answered})"
        )
    fields = certificate_fields(report, name, now)
    digest = checksum(fields)
    stamp = fields["issued"][:19].replace(":", "").replace("T", "-")
    kind = _slug(report.title.split(":")[0])
    path = Path(out_dir or default_dir()) / f"{_slug(fields['name'])}-{kind}-{stamp}-{digest[:8]}.html"
    atomic_write_text(path, render(fields, digest))
    return path


class _Reader(HTMLParser):
    """Collects the text of every ``data-field`` element and the embedded JSON."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.fields: dict[str, list[str]] = {}
        self.json_parts: list[str] = []
        self._open: list[str | None] = []
        self._in_json = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "script" and attr.get("id") == "dlfund-certificate":
            self._in_json = True
        field = attr.get("data-field")
        if field is not None:
            if field in self.fields:
                raise CertificateError(f"the field {field!r} appears twice")
            self.fields[field] = []
        self._open.append(field)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_json = False
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if self._in_json:
            self.json_parts.append(data)
        for field in self._open:
            if field is not None:
                self.fields[field].append(data)


def verify_certificate(path: str | Path) -> dict[str, Any]:
    """Check a certificate file: the embedded fields must give the stored checksum, and every
    visible field must show what the fields say. Returns the fields (with ``checksum``); raises
    :class:`CertificateError` saying what does not match."""
    reader = _Reader()
    reader.feed(Path(path).read_text(encoding="utf-8"))
    reader.close()
    try:
        data = json.loads("".join(reader.json_parts))
    except json.JSONDecodeError as err:
        raise CertificateError(f"{path}: the embedded certificate data are missing or not JSON ({err})") from None
    if not isinstance(data, dict) or set(data) != {*FIELDS, "checksum"}:
        raise CertificateError(f"{path}: the embedded data must have the fields {', '.join(FIELDS)}, checksum")
    stored = data.pop("checksum")
    digest = checksum(data)
    if digest != stored:
        raise CertificateError(f"{path}: checksum mismatch: the fields give {digest}, the file says {stored}")
    found = {key: " ".join("".join(parts).split()) for key, parts in reader.fields.items()}
    for key, expected in visible(data, digest).items():
        if key not in found:
            raise CertificateError(f"{path}: the visible field {key!r} is missing")
        if found[key] != " ".join(expected.split()):
            raise CertificateError(
                f"{path}: the visible {key} says {found[key]!r}, the certified data say {expected!r}"
            )
    return {**data, "checksum": digest}
