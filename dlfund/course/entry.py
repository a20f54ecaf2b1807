"""The ``dlfund`` console command: ``dlfund progress`` answers at once, everything else goes to the CLI.

The full command line (:mod:`dlfund.course.cli`) imports torch, nbformat and most of the library: seconds
on a small machine. ``dlfund progress`` reads a few JSON files and must answer within 2 s, so it is
dispatched here before any of that is imported.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from dlfund.course import progress


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["progress"]:
        return progress.main(args)
    # every other command: the full CLI (torch, nbformat and the library; seconds that progress must not pay)
    try:
        from dlfund.course import cli
    except KeyboardInterrupt:  # Ctrl-C while the libraries load: one line, no traceback
        print("dlfund: interrupted", file=sys.stderr)
        return 130
    return cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
