"""``python -m dlfund.course.quiz.verify CERTIFICATE.html ...``: check quiz certificates.

Prints ``OK`` with the certified name, quiz, score and date, or ``FAIL`` with what does not match;
the exit status is 1 if any certificate fails.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from dlfund.course.quiz.certificate import CertificateError, verify_certificate


def main(argv: Sequence[str] | None = None) -> int:
    paths = list(sys.argv[1:] if argv is None else argv)
    if not paths:
        print("usage: python -m dlfund.course.quiz.verify CERTIFICATE.html [...]", file=sys.stderr)
        return 2
    bad = 0
    for path in paths:
        try:
            data = verify_certificate(path)
        except (CertificateError, OSError) as err:
            bad += 1
            print(f"FAIL {err}")
        else:
            print(f"OK   {path}: {data['name']}, {data['title']}, {data['correct']}/{data['total']}, {data['date']}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
