"""``python -m dlfund.course.quiz.verify CERTIFICATE.html ...``: check quiz certificates.

For each file: ``OK`` with the certified name, quiz, score and date, or ``FAIL`` with the first thing that does
not hold, and on to the next file whatever the file holds. Checked: the fields (types, dates, correct ≤ total,
the score at the pass mark), the checksum, that the page is exactly the one its fields give (no text the
fields do not say), and, when the course's question bank is the edition the certificate names, that the
question ids are the draw its seed gives (a unit quiz: the seeded subset of the unit's pool; the exam: the
seeded draw from the exam pool). The exit status is 1 if any certificate fails, 2 without files.

This checks that a certificate is consistent, not who earned it: anyone with the code can make one.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dlfund.course import manifest
from dlfund.course.quiz.bank import BankError, Question, fingerprint, in_pool, load_bank
from dlfund.course.quiz.certificate import CertificateError, verify_certificate
from dlfund.course.quiz.session import EXAM_QUESTIONS, draw_exam, exam_title, select_unit, unit_title

LIMITS = (
    "verify checks that a certificate is consistent (its fields, checksum, page and question draw); "
    "it cannot tell who answered: a certificate is a self-assessment."
)


def check_draw(data: dict[str, Any], bank: Sequence[Question]) -> str:
    """Redo the question draw of a verified certificate's ``data`` from its seed on ``bank``. Returns a note
    (what could be checked); raises :class:`CertificateError` when the draw or the title do not match."""
    kind, edition = data.get("kind"), data.get("bank")
    if kind is None or edition is None:
        return "the draw was not recorded with its bank edition (format 1 or made by hand): not re-checked"
    if edition != fingerprint(bank):
        return f"drawn from another edition of the question bank ({edition[:12]}…): the draw is not re-checked"
    ids, total, seed = data["question_ids"], data["total"], data["seed"]
    if kind == "exam":
        pool = in_pool(bank, "exam")
        if not pool:
            raise CertificateError("an exam certificate, but this bank edition has no exam pool to draw from")
        expected_total = min(EXAM_QUESTIONS, len(pool))
        if total != expected_total:
            raise CertificateError(f"an exam certificate needs {expected_total} questions, this one has {total}")
        title, drawn = exam_title(), draw_exam(bank, total, seed)
    else:
        unit = int(kind.split()[1])
        try:
            title, drawn = unit_title(unit), select_unit(bank, unit, seed)
        except KeyError as err:
            raise CertificateError(f"no quiz of unit {unit}: {err.args[0]}") from None
    if data["title"] != title:
        raise CertificateError(f"the title says {data['title']!r}; a certificate of {kind} is titled {title!r}")
    if ids != [q.id for q in drawn]:
        raise CertificateError(f"the question ids are not the draw of seed {seed} for {kind} in this bank edition")
    return f"the question draw of seed {seed} re-checked against this bank edition"


def main(argv: Sequence[str] | None = None) -> int:
    paths = list(sys.argv[1:] if argv is None else argv)
    if not paths:
        print("usage: python -m dlfund.course.quiz.verify CERTIFICATE.html [...]", file=sys.stderr)
        return 2
    try:
        bank: list[Question] | None = load_bank()
    except (BankError, OSError) as err:
        bank = None
        print(f"note: the question bank could not be read ({err}); draws are not re-checked")
    bad = 0
    for path in paths:
        shown = manifest.display_path(Path(path))
        try:
            data = verify_certificate(path)
            note = check_draw(data, bank) if bank is not None else "the draw was not re-checked"
        except CertificateError as err:
            bad += 1
            print(f"FAIL {err}" if str(err).startswith(str(path)) else f"FAIL {shown}: {err}")
        except Exception as err:  # never stop before the other files: say what broke, as a failure
            bad += 1
            print(f"FAIL {shown}: could not be checked ({type(err).__name__}: {err})")
        else:
            print(f"OK   {shown}: {data['name']}, {data['title']}, {data['correct']}/{data['total']}, {data['date']}")
            print(f"     {note}")
    print(LIMITS)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
