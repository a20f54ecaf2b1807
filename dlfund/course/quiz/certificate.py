"""The certificate for a passed quiz or exam: one self-contained HTML file, and its verification.

The file shows the name, the quiz, the date, the score, the pass mark, the question ids and a
checksum, and embeds the same fields as JSON. The checksum is the sha256 of those fields in a
canonical JSON form. :func:`verify_certificate` checks every field (types, dates, correct ≤ total, the
score at the pass mark), recomputes the checksum, and renders the page again from the embedded fields:
the file must be exactly that page, so no visible text can say anything the checked fields do not (an
edited score, a name hidden by CSS, an added line). :mod:`dlfund.course.quiz.verify` also redoes the
question draw from the seed when the bank is the edition the certificate names. It is a consistency
check, not a signature: anyone with the code can make a certificate, and none proves who answered.
That is why the certificate says what it is: a self-assessment, not an accredited qualification.

Verify one from the shell with ``python -m dlfund.course.quiz.verify FILE``.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import tempfile
import unicodedata
from datetime import date, datetime, timedelta
from html.parser import HTMLParser
from importlib.metadata import version
from pathlib import Path
from typing import Any

from dlfund.course import manifest
from dlfund.course.quiz.report import PASS_MARK, Report
from dlfund.utils.io import atomic_write_text

FORMAT = 2
"""Format 2 adds ``kind`` (what was drawn) and ``bank`` (the bank edition); format 1 files still verify."""
NOTICE = (
    "This is a self-assessment, not an accredited qualification. The quiz was taken "
    "unsupervised on the learner's own computer. The checksum detects edits to this file; "
    "it is not a signature and does not prove who answered."
)
FIELDS_V1 = (
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
FIELDS = (*FIELDS_V1, "kind", "bank")
FIELDS_OF_FORMAT = {1: FIELDS_V1, 2: FIELDS}
MAX_NAME = 100


class CertificateError(ValueError):
    """A certificate that does not verify; the message says what does not match."""


def default_dir() -> Path:
    """``runs/certificates`` in the course repository (git-ignored), else in the current folder."""
    root = manifest.RUNS_DIR if manifest.UNITS_DIR.is_dir() else Path.cwd() / "runs"
    return root / "certificates"


def check_out_dir(folder: str | Path) -> Path:
    """Make ``folder`` if needed and prove a file can be written there (before a quiz, so that a passed
    attempt's certificate is not lost at the end). Raises ``OSError`` saying which folder and why."""
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".dlfund-write-test-"):
            pass
    except OSError as err:
        raise OSError(f"cannot write a certificate in {path}: {err.strerror or err}") from None
    return path


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
        **({"bank": fields["bank"] or "not recorded"} if "bank" in fields else {}),
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
        ("Question bank (sha256)", "bank"),
    ]
    table = "\n".join(
        f'<tr><th>{label}</th><td data-field="{key}">{shown[key]}</td></tr>' for label, key in rows if key in shown
    )
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
        "dlfund_version": _dlfund_version(),
        "kind": report.kind,
        "bank": report.bank,
    }


def _dlfund_version() -> str:
    try:
        return version("dlfund")
    except Exception:  # run from a checkout without installing: the version in its pyproject.toml
        match = re.search(r'^version\s*=\s*"([^"]+)"', (manifest.ROOT / "pyproject.toml").read_text(), re.M)
        return match.group(1) if match else "0"


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


def _fail(path: str | Path, why: str) -> CertificateError:
    return CertificateError(f"{path}: {why}")


def _check_fields(path: str | Path, data: dict[str, Any]) -> None:
    """Every field has its type and the values agree with each other and with the course's rules."""

    def need(ok: bool, why: str) -> None:
        if not ok:
            raise _fail(path, why)

    def integer(key: str) -> int:
        value = data[key]
        need(type(value) is int, f"{key} must be a whole number, found {value!r}")
        return value

    fmt = data["format"]
    for key in ("name", "title", "date", "issued", "dlfund_version"):
        need(isinstance(data[key], str) and data[key].strip() != "", f"{key} must be a non-empty text")
    try:
        need(clean_name(data["name"]) == data["name"], "the name has characters or spacing no certificate writes")
    except ValueError as err:
        raise _fail(path, f"the name: {err}") from None
    correct, total, seed, mark = integer("correct"), integer("total"), integer("seed"), integer("pass_mark_percent")
    need(total >= 1, f"a certificate needs at least one question, found total {total}")
    need(0 <= correct <= total, f"correct must be between 0 and the total {total}, found {correct}")
    need(mark == int(PASS_MARK * 100), f"the pass mark is {int(PASS_MARK * 100)}%, the file says {mark}%")
    need(correct * 100 >= mark * total, f"{correct} of {total} is below the pass mark of {mark}%: no certificate")
    need(seed >= 0, f"the seed must not be negative, found {seed}")
    ids = data["question_ids"]
    need(isinstance(ids, list) and all(isinstance(i, str) and i for i in ids), "question_ids must be a list of ids")
    need(len(ids) == total, f"{len(ids)} question ids for a total of {total}")
    need(len(set(ids)) == len(ids), "a question id appears twice")
    try:
        issued = datetime.fromisoformat(data["issued"])
        day = date.fromisoformat(data["date"])
    except ValueError:
        raise _fail(path, f"date {data['date']!r} / issued {data['issued']!r} are not ISO dates") from None
    need(issued.tzinfo is not None, "the issue time has no time zone")
    need(day == issued.date(), f"the date {day} is not the day of the issue time {data['issued']}")
    need(issued <= datetime.now(issued.tzinfo) + timedelta(days=1), f"issued in the future: {data['issued']}")
    need(
        re.fullmatch(r"\d+(\.\d+)*([.-]?\w+)*", data["dlfund_version"]) is not None, "the dlfund version is unreadable"
    )
    if fmt >= 2:
        kind, bank = data["kind"], data["bank"]
        need(
            kind is None or kind == "exam" or re.fullmatch(r"unit \d+", str(kind)) is not None, f"unknown kind {kind!r}"
        )
        need(bank is None or (isinstance(bank, str) and re.fullmatch(r"[0-9a-f]{64}", bank) is not None), "bad bank")


def verify_certificate(path: str | Path) -> dict[str, Any]:
    """Check a certificate file on its own: its fields (types, dates, correct ≤ total, at the pass mark), the
    stored checksum, and that the file is exactly the page :func:`render` makes from the embedded fields.
    Returns the fields (with ``checksum``); raises :class:`CertificateError` saying what does not match, for
    any file (not HTML, not UTF-8, not a certificate). :mod:`dlfund.course.quiz.verify` adds the draw."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise _fail(path, f"not UTF-8 text ({err.reason} at byte {err.start}): not a certificate") from None
    except OSError as err:
        raise _fail(path, f"cannot be read ({err.strerror or err})") from None
    reader = _Reader()
    try:
        reader.feed(text)
        reader.close()
    except CertificateError as err:
        raise _fail(path, str(err)) from None
    except Exception as err:  # the HTML parser's own errors on arbitrary input
        raise _fail(path, f"the HTML cannot be read ({type(err).__name__}: {err})") from None
    try:
        data = json.loads("".join(reader.json_parts))
    except (json.JSONDecodeError, RecursionError) as err:
        raise _fail(path, f"the embedded certificate data are missing or not JSON ({err})") from None
    fmt = data.get("format") if isinstance(data, dict) else None
    if type(fmt) is not int or fmt not in FIELDS_OF_FORMAT:
        raise _fail(path, f"unknown certificate format {fmt!r} (known: {', '.join(map(str, FIELDS_OF_FORMAT))})")
    expected = FIELDS_OF_FORMAT[fmt]
    if set(data) != {*expected, "checksum"}:
        raise _fail(path, f"the embedded data must have the fields {', '.join(expected)}, checksum")
    _check_fields(path, data)
    stored = data.pop("checksum")
    digest = checksum(data)
    if digest != stored:
        raise _fail(path, f"checksum mismatch: the fields give {digest}, the file says {stored}")
    if text.replace("\r\n", "\n") != render(data, digest):
        found = {key: " ".join("".join(parts).split()) for key, parts in reader.fields.items()}
        for key, shown in visible(data, digest).items():
            if found.get(key) != " ".join(shown.split()):
                raise _fail(path, f"the visible {key} says {found.get(key)!r}, the certified data say {shown!r}")
        raise _fail(path, "the page differs from the one its certified data give (text edited or added by hand)")
    return {**data, "checksum": digest}
