"""What to run on a GPU machine lent for a few minutes, in order: the full-tier pieces that carry the
course's GPU claims, each sized to finish inside one call.

The GPU machine the course can use is lent now and then for 15 minutes in all, at most 10 minutes a command.
``tools/gpu-full-tier.sh --priorities`` runs :data:`PRIORITIES` in this order, each under its own time
limit and with ``--skip-current`` (a piece whose committed result is current for CUDA is skipped), so each
lent machine carries the work on where the last one stopped. The limits are the notebooks' full-tier
budgets: those of 07/04, 07/06 and 11/01 were set from the first GPU run (one H200, 2026-12-04: 57 s, 125 s
and 93 s, × 1.3 + 5 s), the others are still estimates until a run measures them.

On that first run the first call (start-up, one bundle part and a 26 s check) held the machine 57 s, each
further part 5 s, the smoke pass (``tools/gpu-smoke.sh``: join, install, 111 notebooks 8 at a time) 320 s:
about 6 minutes of the 15 were left for these pieces, in one call.

``python -m dlfund.course.gpu`` prints the pieces, one per line, as the script reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlfund.course import manifest
from dlfund.course.bench import SUITES

PIECE_LIMIT_S = 480
"""No piece may be budgeted above this: 8 minutes leaves room for start-up inside a 10-minute command."""


@dataclass(frozen=True)
class Piece:
    """One full-tier run: a notebook (``unit`` and ``name``) or a benchmark suite (``unit`` 0, ``name`` the
    suite), and the claim of the course it measures."""

    unit: int
    name: str
    claim: str

    @property
    def item(self) -> str:
        """How ``tools/gpu-full-tier.sh`` names it: ``UNIT:NOTEBOOK`` or ``bench:SUITE``."""
        return f"bench:{self.name}" if self.unit == 0 else f"{self.unit}:{self.name}"

    @property
    def limit_s(self) -> int:
        """The time limit of the piece: the notebook's full-tier budget (the benchmark's: the piece limit)."""
        return PIECE_LIMIT_S if self.unit == 0 else manifest.get_unit(self.unit).budget(self.name, "full")


PRIORITIES: tuple[Piece, ...] = (
    Piece(
        7,
        "04-resnet-and-augmentation",
        "a ResNet reaches 94% validation accuracy on Fashion-MNIST in ≤ 90 s of training",
    ),
    Piece(7, "06-vision-transformer", "a small ViT trained from scratch, beside the CNN"),
    Piece(7, "08-self-supervised", "a probe on contrastive features beats training from scratch at 1% of labels"),
    Piece(6, "07-batch-size-and-generalisation", "the batch-size study at full size: test accuracy above 85%"),
    Piece(9, "03-gpt-on-shakespeare", "a GPT reaches validation loss ≤ 1.45 on Shakespeare in ≤ 5 min"),
    Piece(11, "01-precision", "bf16 mixed precision ≥ 2.5× faster than fp32 at equal loss"),
    Piece(11, "02-compile", "torch.compile ≥ 1.3× faster"),
    Piece(0, "reference", "model FLOPs utilisation ≥ 35% on a SmolLM2-135M training step, beside the libraries"),
    Piece(13, "04-finetuning-compared", "LoRA/adapter ≥ 90% exact match at < 1% trainable; LoRA peak ≤ 60% of full"),
)


def problems() -> list[str]:
    """What is wrong with :data:`PRIORITIES`: unknown notebooks or suites, a piece over the limit, repeats."""
    found = []
    for piece in PRIORITIES:
        if piece.unit == 0:
            if piece.name not in SUITES:
                found.append(f"{piece.item}: no benchmark suite {piece.name!r} (known: {', '.join(SUITES)})")
            continue
        try:
            limit = piece.limit_s
        except KeyError as err:
            found.append(f"{piece.item}: {err.args[0]}")
            continue
        if limit > PIECE_LIMIT_S:
            found.append(f"{piece.item}: full-tier budget {limit} s is over the {PIECE_LIMIT_S} s a piece may take")
    items = [p.item for p in PRIORITIES]
    found += [f"{item}: listed twice" for item in sorted({i for i in items if items.count(i) > 1})]
    return found


def main() -> int:
    for piece in PRIORITIES:
        print(f"{piece.item} {piece.limit_s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
