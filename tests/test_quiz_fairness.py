"""The fairness statistics of the quiz bank (dlfund/course/quiz/fairness.py): each statistic on made-up
questions, the near-duplicate measure on the first edition's texts, and the bank-wide targets.

The bank-wide tests at the end are the issue's targets; they fail until the bank meets them (no xfail: a missed
target shows as a failure with its numbers and the ids to look at, as `python -m dlfund.course.quiz.fairness`
prints them).
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from dlfund.course import manifest
from dlfund.course.quiz import bank, fairness
from dlfund.course.quiz.bank import load_bank

FIRST_EDITION = {
    "u02-q02": (
        2,
        "Why is bfloat16 usually the safer 16-bit type for training, compared with float16? It keeps "
        "float32's 8 exponent bits, so large values do not overflow to inf. bfloat16 splits its bits into 8 "
        "for the exponent and 7 for the mantissa: float32's range (overflow only near 3·10³⁸) with coarse "
        "rounding. float16 has 5 exponent and 10 mantissa bits: finer rounding, but anything above 65504 "
        "becomes inf, which is why float16 training needs loss scaling and bfloat16 usually does not.",
    ),
    "u11-q01": (
        11,
        "Why does float16 training need a gradient scaler while bfloat16 training does not? float16 has only "
        "5 exponent bits: small gradients fall below its smallest number and become 0; bfloat16 keeps "
        "float32's 8 exponent bits and its range. bfloat16 trades mantissa bits (7 versus float16's 10) for "
        "float32's exponent range. float16's smallest subnormal is about 6e-8, and real gradients go below "
        "it; multiplying the loss by a large factor lifts them into range, and the scaler divides the "
        "parameter gradients by the same factor before the step.",
    ),
    "u08-q05": (
        8,
        "In additive attention over a padded batch, how do you give the padded source positions exactly zero "
        "weight while each row of weights still sums to 1? Set the scores at padded positions to -inf (or a "
        "very negative number) before the softmax. exp(-inf) = 0, so masked scores get weight 0 and the "
        "softmax normalises over the real positions only. Multiplying the scores by the mask sets them to 0, "
        "and exp(0) = 1 still gives padding weight; zeroing the weights after the softmax leaves rows that "
        "sum to less than 1. The softmax must run over the source positions (dim=-1).",
    ),
    "u09-q02": (
        9,
        "A learner applies the causal mask by zeroing the weights of future keys after the softmax. What is "
        "wrong? The remaining weights of each row no longer sum to 1; the scores of future keys must be set "
        "to -inf before the softmax. The softmax normalises over all keys, future ones included, so zeroing "
        "afterwards leaves rows summing to less than 1 (and the normaliser still depends on future keys, "
        "which leaks information). Setting the scores to -inf before the softmax gives those keys exactly "
        "zero weight and a proper distribution over the rest.",
    ),
    "u08-q01": (
        8,
        "Why does unit 8 split the movie reviews by movie rather than by review? With a random split almost "
        "every test review is about a movie seen in training, so the test score would reward remembering "
        "movies. Reviews of one movie share its title, actors, plot words and often its verdict. A split by "
        "review puts reviews of nearly every test movie into training (notebook 01 measures the share), so a "
        "model could score well by remembering movies, which says nothing about new ones. A group split by "
        "movie_name removes that leak, and an assertion checks that no movie is in two splits.",
    ),
    "u09-q06": (
        9,
        "Why does the unit hold out four whole plays for validation instead of a random 10% of the lines? "
        "Random lines come from scenes the model trained on (the lines around them), so the validation loss "
        "would overstate how well it predicts unseen text. Neighbouring lines share characters, names and "
        "phrases. Validating on lines scattered through training plays measures partly memorisation of those "
        "scenes. Held-out whole plays are text the model has never seen, an honest estimate of generalisation"
        " (and usually a higher loss).",
    ),
    "u10-q08": (
        10,
        "In the comparison table, why are all models trained and tested on the split from review_splits with "
        "the same seed as unit 8? So that the accuracies are measured on the same test movies, and no movie "
        "of the test set was seen in training by any model. Accuracies are only comparable on the same test "
        "reviews. The split by movie keeps every movie in one split, so no model can score by recognising a "
        "movie it saw in training; using the same function and seed gives every model the same split.",
    ),
    "u02-q01": (
        2,
        "t = torch.arange(6); a = t[1:4]; b = t[t > 2]. Then a[0] = 100 and b[0] = -1 are run. What does t "
        "hold now? [0, 100, 2, 3, 4, 5] Basic slicing returns a view of the same storage, so writing a[0] "
        "writes t[1]. A boolean mask gathers elements from all over the storage and returns a copy, so "
        "writing b[0] leaves t alone. When you need an independent tensor, make the copy explicit with "
        ".clone().",
    ),
    "u04-q03": (
        4,
        "A model's last layer applies a softmax, and its output goes into F.cross_entropy. What happens? The "
        "loss cannot fall below a floor above 0 and learning is slowed, without any warning. F.cross_entropy "
        "applies log_softmax itself. Probabilities in [0, 1] become 'logits' that differ by at most 1, so "
        "even a perfect prediction costs log(1 + (C − 1)/e) ≈ 1.46 for C = 10, and the gradients are "
        "squashed. Nothing crashes; the accuracy just ends up worse. The model returns logits; the loss does "
        "the softmax.",
    ),
    "u01-q09": (
        1,
        "A perceptron is trained with early stopping on data that no line separates. Which weights does it "
        "end with? A copy of the weights from the epoch with the fewest validation mistakes. Early stopping "
        "counts the validation mistakes after every epoch, keeps a copy (a clone, not another name for the "
        "same tensor) of the best weights, stops after `patience` epochs without improvement, and restores "
        "the copy. Training mistakes would reward fitting the training set, and the test set must not take "
        "part in any choice.",
    ),
    "u09-q09": (
        9,
        "Why can a KV cache give exactly the logits of recomputing the whole sequence at every step? Because "
        "with a causal mask, the keys and values of earlier positions do not depend on later tokens, so they "
        "are the same at every step. Each position's keys and values depend only on the tokens up to it. "
        "Appending a token changes nothing before it, so storing them and computing only the new token's "
        "query, key and value is exact (up to floating-point rounding). Eval mode matters for determinism, "
        "but is not why it is exact.",
    ),
    "u12-q03": (
        12,
        "SmolLM2 has 9 query heads and 3 key/value heads. Compared with 9 key/value heads, how big is its KV "
        "cache? A third of the size, because only 3 key/value heads are cached per layer. The cache stores "
        "keys and values of h_kv heads per layer; the repetition to 9 heads happens on the fly in attention, "
        "never in the cache.",
    ),
    "u07-q10": (
        7,
        "To train only a new head on a pretrained network's features, notebook 05 freezes the features. What "
        "does freezing consist of? requires_grad_(False), and eval mode for the frozen part, so BatchNorm "
        "keeps its pretrained statistics. The optimizer only updates parameters that require gradients, so "
        "requires_grad_(False) stops the weights from changing. But BatchNorm's running statistics are not "
        "parameters: in train mode they drift towards the new batches' statistics, changing the features. "
        "FrozenFeatures therefore keeps its body in eval mode whatever train() is called with, and the "
        "notebook checks that the weights and running statistics are unchanged.",
    ),
    "u03-q02": (
        3,
        "For one example with label y, p = σ(z) and the loss is the binary cross-entropy −[y log p + (1 − y) "
        "log(1 − p)]. What is ∂L/∂z? p − y Multiply the two local derivatives at the end of the graph: for y "
        "= 1, (−1/p)·p(1 − p) = p − 1; for y = 0 the same product gives p. In both cases ∂L/∂z is the "
        "prediction minus the target, which is why logistic regression's gradient is Xᵀ(p − y)/N.",
    ),
    "u05-q07": (
        5,
        "Early in training, the logged training loss of an epoch (on_epoch=True) sits above that epoch's "
        "validation loss. Which reason does notebook 03 give? It averages over an epoch in which the weights "
        "kept improving; validation is measured after the epoch. The epoch mean of the training loss mixes "
        "the losses of early batches (worse weights) and late ones (better weights), but it is plotted at the"
        " end of the epoch. The validation loss is computed once, with the weights at the end of the epoch. "
        "While training improves quickly this puts the training curve above the validation curve; it is not a"
        " sign that validation is easier.",
    ),
    "u13-q06": (
        13,
        "Why are the adaption prompts' keys not rotated with RoPE? They are not words at positions in the "
        "text: every query, at any position, should see the same prompts, which also makes decoding with the "
        "KV cache work unchanged. RoPE encodes where a token is in the sequence. The prompts are learned "
        "context for every position; they are recomputed from the parameters at each decoding step and never "
        "cached, so they need no position.",
    ),
    "u14-q02": (
        14,
        "A classifier gets all 50 images of a rare class right. Which statement about a 95% interval for its "
        "accuracy on that class is correct? Wilson's interval stays informative; the normal one has zero "
        "width and under-covers. The normal (Wald) interval plugs the observed p̂ into sqrt(p̂(1-p̂)/N), "
        "which is 0 when p̂ = 1, as if 50 images proved perfection. Wilson solves for the true accuracies "
        "compatible with the data and gives an interval reaching well below 1; the coverage simulation shows "
        "Wilson near 95% where the normal interval falls short. A bootstrap of 50 ones is also [1, 1].",
    ),
}
"""Question + right answer + explanation of first-edition questions (``fairness.text_of``), kept here so the
measure is tested on fixed text whatever the bank becomes: the first seven repeat one idea across units."""
KNOWN_PAIRS = [
    ("u02-q02", "u11-q01"),  # bf16 keeps float32's 8 exponent bits
    ("u08-q05", "u09-q02"),  # -inf before the softmax masks a position
    ("u08-q01", "u09-q06"),  # split by movie / by play, so the held-out text is unseen
    ("u08-q01", "u10-q08"),  # split by movie, in unit 8 and again in unit 10
]


def single(qid: str, choices: list[str], right: int, explanation: str = "Because.", unit: int = 1) -> bank.Question:
    salt = "ab" * 8
    return bank.Question(
        qid, unit, "s", "q?", tuple(choices), explanation, salt, bank.answer_hash(salt, qid, choices[right])
    )


def test_near_duplicates_flag_the_known_pairs_and_no_other():
    items = [(qid, unit, "".join(parts)) for qid, (unit, *parts) in FIRST_EDITION.items()]
    flagged = {(a, b) if a < b else (b, a) for _, a, b in fairness.near_duplicates(items)}
    assert set(KNOWN_PAIRS) <= flagged, f"not flagged: {set(KNOWN_PAIRS) - flagged}"
    in_known = {i for pair in KNOWN_PAIRS for i in pair}
    assert all(a in in_known and b in in_known for a, b in flagged), f"a decoy flagged: {flagged}"
    # questions of one unit are never compared; a question is identical to itself
    same_unit = [("u01-q01", 1, items[0][2]), ("u01-q02", 1, items[0][2])]
    assert fairness.near_duplicates(same_unit) == []
    assert fairness.near_duplicates([("u01-q01", 1, items[0][2]), ("u02-q01", 2, items[0][2])])[0][0] == 1.0


def test_the_measure_merges_the_courses_synonyms_and_drops_common_words():
    assert fairness.words("The movies were split; the plays are held-out") == ["group", "split", "group", "heldout"]
    assert fairness.words("Set the scores to -inf before the softmax") == ["set", "scor", "neginf", "softmax"]


def test_longest_and_much_longer_right_choices():
    qs = [
        single("u01-q01", ["a long right answer", "short", "tiny"], 0),  # longest, 1.4x: both
        single("u01-q02", ["same length", "same length!", "x"], 1),  # longest, not 1.4x the other
        single("u01-q03", ["tie one", "tie two", "no"], 0),  # tied for the longest
        single("u01-q04", ["short", "a much longer wrong one", "mid size"], 0),  # not longest
    ]
    assert fairness.longest_right(qs) == ["u01-q01", "u01-q02", "u01-q03"]
    assert fairness.much_longer(qs) == ["u01-q01"]
    assert fairness.positions(qs) == {1: ["u01-q01", "u01-q03", "u01-q04"], 2: ["u01-q02"]}


def test_explanations_that_quote_the_right_choice():
    right = "The scores of future keys are set to -inf"  # 41 characters
    qs = [
        single("u01-q01", [right, "b choice", "c choice"], 0, f"Because {right.upper()}, of course."),
        single("u01-q02", [right, "b choice", "c choice"], 0, "Masked scores get weight 0 after the softmax."),
        single("u01-q03", ["short right one", "b", "c"], 0, "The short right one, since it is short."),  # < 25
    ]
    assert fairness.quoting_explanations(qs) == ["u01-q01"]


def test_checks_on_the_fixture_bank_report_every_statistic(tmp_path):
    import quiz_fixture

    questions = quiz_fixture.bank(tmp_path)
    names = [c.name for c in fairness.checks(questions)]
    assert len(names) == 10 and all(c.value for c in fairness.checks(questions))
    text = fairness.report(questions)
    assert "MISSED unit-pool questions: 36 (at least 200)" in text and "not single-answer" in text


def test_the_command_prints_the_numbers_and_fails_on_a_missed_target(tmp_path, capsys):
    import quiz_fixture

    folder = quiz_fixture.write_bank(tmp_path / "bank")
    capsys.readouterr()
    assert fairness.main([str(folder)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("quiz bank: 63 questions") and "MISSED" in out and "right choice by position" in out
    assert fairness.main([str(tmp_path / "nothing")]) == 2
    assert "no questions found" in capsys.readouterr().err


# --- the bank-wide targets (issue 26) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def questions():
    return load_bank()


@pytest.fixture(scope="module")
def singles(questions):
    return [q for q in questions if q.kind == "single"]


def test_right_choice_is_the_longest_in_at_most_30_percent(singles):
    longest = fairness.longest_right(singles)
    share = Fraction(len(longest), len(singles))
    assert share <= fairness.LONGEST_MAX, f"{len(longest)} of {len(singles)} = {float(share):.1%}: {longest}"


def test_no_right_choice_is_1_4_times_longer_than_every_other(singles):
    longer = fairness.much_longer(singles)
    assert longer == [], f"{len(longer)}: {longer}"


def test_no_position_holds_more_than_35_percent_of_right_choices(singles):
    for p, ids in fairness.positions(singles).items():
        assert Fraction(len(ids), len(singles)) <= fairness.POSITION_MAX, f"position {p}: {len(ids)} of {len(singles)}"


def test_explanations_do_not_quote_the_right_choice(questions):
    assert fairness.quoting_explanations(questions) == []


def test_no_cross_unit_near_duplicates(questions):
    pairs = fairness.near_duplicates([(q.id, q.unit, fairness.text_of(q)) for q in questions])
    assert pairs == [], f"{len(pairs)} pairs: " + ", ".join(f"{a}~{b} ({s})" for s, a, b in pairs)


def test_at_least_200_unit_pool_questions_and_13_per_unit(questions):
    pool = [q for q in questions if q.pool == "unit"]
    per_unit = {u.number: sum(q.unit == u.number for q in pool) for u in manifest.UNITS}
    short = {u: n for u, n in per_unit.items() if n < fairness.PER_UNIT_MIN}
    assert len(pool) >= fairness.UNIT_POOL_MIN and not short, f"{len(pool)} in the unit pool; short: {short}"


def test_at_least_60_exam_pool_questions_and_4_per_unit(questions):
    pool = [q for q in questions if q.pool == "exam"]
    per_unit = {u.number: sum(q.unit == u.number for q in pool) for u in manifest.UNITS}
    short = {u: n for u, n in per_unit.items() if n < fairness.EXAM_PER_UNIT_MIN}
    assert len(pool) >= fairness.EXAM_POOL_MIN and not short, f"{len(pool)} in the exam pool; short: {short}"


def test_at_least_a_quarter_of_all_questions_are_not_single_answer(questions):
    other = [q for q in questions if q.kind != "single"]
    share = Fraction(len(other), len(questions))
    assert share >= fairness.NON_SINGLE_MIN, f"{len(other)} of {len(questions)} = {float(share):.1%}"
