"""The verdict on one (prediction, gold) pair: same string, then structure part by part,
each part by text or by math-verify plus the second check. It runs inside a grading worker;
time and memory limits are the pool's."""

from __future__ import annotations

import re

from sdfb.grading.check import independent_check
from sdfb.grading.structure import UNORDERED, Group, Leaf, Node, leaves, parse_answer
from sdfb.grading.text import light_form, text_key
from sdfb.names import GoldStatus, GradeStatus

_PLAIN_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def verdict(predicted: str, gold: str) -> tuple[GradeStatus, bool]:
    """(status, checks_disagree): `correct`, `wrong` or `unparseable`,
    and whether the two checks split on it.

    Rules, in order: an answer written as code or over-long is `unparseable`; the same string after light
    normalisation is `correct`; otherwise the two trees must match (`compare_trees`). The second check can
    only take `correct` away, and a disagreement is recorded only on a `wrong` verdict.
    """
    gold_tree = parse_answer(gold)
    pred_tree = parse_answer(predicted)
    if pred_tree is None or gold_tree is None:
        return GradeStatus.UNPARSEABLE, False
    if light_form(predicted) == light_form(gold):
        return GradeStatus.CORRECT, False
    judge = LeafJudge()
    status = compare_trees(gold_tree, pred_tree, judge)
    return status, status == GradeStatus.WRONG and judge.disagreed


def gold_verdict(gold: str) -> GoldStatus:
    """ok when every part of the gold answer is readable (text, or
    parsed by math-verify), else unparseable."""
    quick = quick_gold_status(gold)
    if quick is not None:
        return quick
    judge = LeafJudge()
    tree = parse_answer(gold)
    assert tree is not None, gold
    readable = all(text_key(leaf.raw) or judge.parsed(leaf.form) for leaf in leaves(tree) if leaf.form)
    return GoldStatus.OK if readable else GoldStatus.UNPARSEABLE


def quick_gold_status(gold: str) -> GoldStatus | None:
    """The gold status when no parser is needed (plain numbers, text, unreadable), or None."""
    tree = parse_answer(gold)
    if tree is None:
        return GoldStatus.UNPARSEABLE
    parts = leaves(tree)
    if any(leaf.form is None and not text_key(leaf.raw) for leaf in parts):
        return GoldStatus.UNPARSEABLE
    if all(text_key(leaf.raw) or _PLAIN_NUMBER.fullmatch(leaf.form or "") for leaf in parts):
        return GoldStatus.OK
    return None


def compare_trees(gold: Node, pred: Node, judge: LeafJudge) -> GradeStatus:
    """`correct` when the structures match and every part matches its counterpart; `wrong` when they differ,
    `unparseable` when a part could not be read. Tuples, intervals and ratios are ordered and their brackets
    must agree; lists, sets and unions are unordered (a list counts repeats, a set does not). A collection of
    one matches its only element; any other structure against a single value is `wrong`: `8` is not `6 and 8`,
    `(1,234)` is not 1234, `32` is not `7:32`."""
    gold, pred = _single(gold), _single(pred)
    if isinstance(gold, Leaf) and isinstance(pred, Leaf):
        return judge(gold, pred)
    if isinstance(gold, Leaf) or isinstance(pred, Leaf):
        single = gold if isinstance(gold, Leaf) else pred
        return (
            GradeStatus.UNPARSEABLE
            if single.form is None and not text_key(single.raw, loose=True)
            else GradeStatus.WRONG
        )
    if gold.kind in UNORDERED and pred.kind in UNORDERED:
        if (gold.kind == "union") != (pred.kind == "union"):
            return GradeStatus.WRONG
        as_set = "set" in (gold.kind, pred.kind)
        return _unordered(gold.items, pred.items, judge, as_set)
    if (gold.kind, gold.brackets, len(gold.items)) != (pred.kind, pred.brackets, len(pred.items)):
        return GradeStatus.WRONG
    return _worst([compare_trees(g, p, judge) for g, p in zip(gold.items, pred.items, strict=True)])


def _single(node: Node) -> Node:
    if isinstance(node, Group) and node.kind in ("list", "set") and len(node.items) == 1:
        return _single(node.items[0])
    return node


def _worst(statuses: list[GradeStatus]) -> GradeStatus:
    for status in (GradeStatus.WRONG, GradeStatus.UNPARSEABLE):
        if status in statuses:
            return status
    return GradeStatus.CORRECT


def _unordered(gold: tuple[Node, ...], pred: tuple[Node, ...], judge: LeafJudge, as_set: bool) -> GradeStatus:
    """Every gold part matched by a prediction part and back: one to one for lists, any to any for sets."""
    if not as_set and len(gold) != len(pred):
        return GradeStatus.WRONG
    memo: dict[tuple[int, int], GradeStatus] = {}

    def same(i: int, j: int) -> bool:
        if (i, j) not in memo:
            memo[i, j] = compare_trees(gold[i], pred[j], judge)
        return memo[i, j] == GradeStatus.CORRECT

    def order(n: int, first: int) -> list[int]:
        return [first, *(k for k in range(n) if k != first)] if first < n else list(range(n))

    used: set[int] = set()
    for i in range(len(gold)):
        match = next((j for j in order(len(pred), i) if (as_set or j not in used) and same(i, j)), None)
        if match is None:
            return GradeStatus.UNPARSEABLE if GradeStatus.UNPARSEABLE in memo.values() else GradeStatus.WRONG
        used.add(match)
    if as_set:
        for j in range(len(pred)):
            if not any(same(i, j) for i in order(len(gold), j)):
                return (
                    GradeStatus.UNPARSEABLE if GradeStatus.UNPARSEABLE in memo.values() else GradeStatus.WRONG
                )
    return GradeStatus.CORRECT


class LeafJudge:
    """Compares single values: light form, units, text, then math-verify and the second check. It remembers
    math-verify's parses within one verdict and whether the two checks ever disagreed."""

    def __init__(self) -> None:
        self.disagreed = False
        self._parses: dict[str, list] = {}

    def __call__(self, gold: Leaf, pred: Leaf) -> GradeStatus:
        if light_form(gold.raw) == light_form(pred.raw):
            return GradeStatus.CORRECT
        if gold.unit and pred.unit and gold.unit != pred.unit:
            return GradeStatus.WRONG  # `5 minutes` is not `5 hours`, whatever the number
        text = _text_verdict(gold.raw, pred.raw)
        if text is not None:
            return text
        if gold.form is None or pred.form is None:
            return GradeStatus.UNPARSEABLE
        if gold.form == pred.form:
            return GradeStatus.CORRECT
        return self._math(gold.form, pred.form)

    def _math(self, gold: str, pred: str) -> GradeStatus:
        from math_verify import verify

        gold_parsed = self.parsed(gold)
        pred_parsed = self.parsed(pred)
        if not gold_parsed or not pred_parsed:
            return GradeStatus.UNPARSEABLE
        first = verify(gold_parsed, pred_parsed, timeout_seconds=None)
        second = independent_check(gold, pred)
        if second is None or second == first:
            return GradeStatus.CORRECT if first else GradeStatus.WRONG
        self.disagreed = True
        return GradeStatus.WRONG

    def parsed(self, form: str) -> list:
        """math-verify's parse of a checker form, wrapped in `$...$`; [] unless it yields a sympy object.

        Only the LaTeX extractor is used: the plain-expression one hands digits-and-operators text to sympy's
        parse_expr (an eval), and it reads `x + y = 3` as 3."""
        from math_verify import LatexExtractionConfig, parse
        from sympy import Basic, MatrixBase

        if form not in self._parses:
            found = parse(f"${form}$", extraction_config=[LatexExtractionConfig()], parsing_timeout=None)
            self._parses[form] = found if any(isinstance(i, Basic | MatrixBase) for i in found) else []
        return self._parses[form]


def _text_verdict(gold: str, pred: str) -> GradeStatus | None:
    """`correct` / `wrong` when either side is a text answer, None when neither is.

    A text gold against a value is `wrong`; a text prediction against a numeric gold is `wrong` when it is a
    text answer on its own (`odd`), else left to the checkers (`banana` is `unparseable` there)."""
    gold_key = text_key(gold)
    pred_key = text_key(pred)
    if gold_key is None and pred_key is None:
        return None
    gold_key = gold_key or text_key(gold, loose=True)
    pred_key = pred_key or text_key(pred, loose=True)
    if gold_key and pred_key:
        return GradeStatus.CORRECT if gold_key == pred_key else GradeStatus.WRONG
    return GradeStatus.WRONG
