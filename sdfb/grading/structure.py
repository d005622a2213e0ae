"""An answer's structure: its parts (a list of solutions, a set, a tuple, an interval, a union, a ratio) as
a tree whose leaves are single values, each normalised on its own. It reads notation; it compares nothing."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import accumulate

from sdfb.grading.normalise import BLOCKERS, after_predicate, leaf_form, prepare, prose_value, whole_number
from sdfb.grading.text import is_text, text_key

# Kinds whose order does not matter; the others (tuple, interval, ratio) are compared in order.
UNORDERED = ("list", "set", "union")
_CONNECTIVE = r"(?:\\(?:text|mbox|textrm)\s*\{\s*(?:and|or|,)\s*\}|\band\b|\bor\b)"
# `1, 2`, `1; 2`, `x = 1 \quad x = 2`, `21, 36, and 82`, `6 \text{ and } 8`, `x = 3 or x = 5`
_LIST = re.compile(rf"\s*(?:[,;]|\\q?quad\b)\s*(?:{_CONNECTIVE}\s*)?|\s*{_CONNECTIVE}\s*")
_COMMA = re.compile(r"\s*,\s*")
_CUP = re.compile(r"\s*\\cup\s*")
_RATIO = re.compile(r"\s*:\s*")
_PM = re.compile(r"\s*(?:\\pm|\+-|\+/-)\s*")
_EMPTY = {"\\emptyset", "\\varnothing", "\\{\\}", "\\{ \\}"}
# `x = (1, 2)`, `S = \{1, 2\}`, `x \in [1, 2)`, `(x, y) = (1, 2)`: the name goes when a structure follows.
_ASSIGNMENT = re.compile(r"^(?:[A-Za-z](?:_\{?\w+\}?)?|\([^()]*\))\s*(?:=|\\in)\s*")
_CLOSERS = ("\\}", "\\rangle", ")", "]", "}")


@dataclass(frozen=True)
class Leaf:
    """One value: `raw` as written (notation rewritten), `form` for the checkers (None: not mathematics)."""

    raw: str
    form: str | None
    unit: str = ""

    @classmethod
    def of(cls, raw: str) -> Leaf:
        form, unit = leaf_form(raw)
        return cls(raw, form, unit)


@dataclass(frozen=True)
class Group:
    kind: str  # list | set | union | tuple | interval | ratio
    items: tuple[Leaf | Group, ...]
    brackets: str = ""  # "()", "[)", ... for tuples and intervals


Node = Leaf | Group


def parse_answer(answer: str) -> Node | None:
    """The answer's tree, or None when it must not be parsed (code, over-long: see `normalise.prepare`).

    Words only (`Alice and Bob`, `\\text{odd}`) stay one leaf. An answer with a part that mixes words and
    numbers is read as a sentence: what follows `is` when that is one value or structure, else its one run
    of mathematics (`prose_value`); a sentence with none or several is a leaf no checker reads (form None).
    """
    text = prepare(answer)
    if text is None:
        return None
    if is_text(text):
        return Leaf.of(text)
    tree = _parse(whole_number(text))
    if not any(_is_prose(leaf) for leaf in leaves(tree)):
        return tree
    predicate = after_predicate(text)
    if predicate and not _blocked(predicate) and not is_text(predicate):  # the subject may say `roots`
        stated = _parse(whole_number(predicate))
        if not any(_is_prose(leaf) for leaf in leaves(stated)):
            return stated
    value = prose_value(text)
    return _parse(value) if value else Leaf(text, None)


def checker_form(answer: str) -> str | None:
    """The answer as one LaTeX string both checkers parse (without `$`), or None when it must not be parsed.

    Parts are normalised one by one and joined again (`1, 234` stays a list; `1,234` is 1234; `25%` is 25;
    `12 cm` is 12; `She has 14 apples left` is 14); None also when a part is not mathematics (`banana`).
    """
    tree = parse_answer(answer)
    return None if tree is None else render(tree)


def render(node: Node) -> str | None:
    if isinstance(node, Leaf):
        return node.form
    items = [render(item) for item in node.items]
    if any(item is None for item in items):
        return None
    if node.kind == "set":
        return "\\{" + ", ".join(items) + "\\}"
    joiner = {"union": " \\cup ", "ratio": ":"}.get(node.kind, ", ")
    body = joiner.join(items)
    return f"{node.brackets[0]}{body}{node.brackets[1]}" if node.brackets else body


def leaves(node: Node) -> list[Leaf]:
    if isinstance(node, Leaf):
        return [node]
    return [leaf for item in node.items for leaf in leaves(item)]


def _is_prose(leaf: Leaf) -> bool:
    """A part that is neither mathematics nor a text answer: `She has 14 apples`, `which is prime`."""
    return leaf.form is None and text_key(leaf.raw) is None


def _blocked(text: str) -> bool:
    return bool({w.lower() for w in re.findall(r"[A-Za-z]+", text)} & BLOCKERS)


def _parse(text: str) -> Node:
    text = text.strip()
    assigned = _ASSIGNMENT.match(text)
    if assigned and (_enclosing(text[assigned.end() :]) or text[assigned.end() :] in _EMPTY):
        text = text[assigned.end() :]
    if text in _EMPTY:
        return Group("set", ())
    if "\\begin" in text:  # matrices and other environments: one value, for math-verify
        return Leaf.of(text)
    for kind, separator in (("list", _LIST), ("union", _CUP), ("ratio", _RATIO)):
        parts = [p for p in _split_top(text, separator) if p]
        if len(parts) > 1:
            return Group(kind, tuple(_parse(p) for p in parts))
    enclosed = _enclosing(text)
    return _bracketed(*enclosed) if enclosed else _plus_minus(text) or Leaf.of(text)


def _plus_minus(text: str) -> Group | None:
    """`1 \\pm \\sqrt{2}`, `x = \\pm 3`, `\\frac{1 \\pm \\sqrt{5}}{2}` as the two values they stand for
    (the sign binds as a written sign does); None unless there is exactly one `\\pm`."""
    found = list(_PM.finditer(text))
    if len(found) != 1:
        return None
    head = text[: found[0].start()]
    tail = text[found[0].end() :]
    binary = head and not head.endswith(("=", "(", "{"))
    plus, minus = (
        (f"{head} + {tail}", f"{head} - {tail}") if binary else (f"{head} {tail}", f"{head} -{tail}")
    )
    return Group("list", (Leaf.of(plus.strip()), Leaf.of(minus.strip())))


def _bracketed(opener: str, inner: str, closer: str) -> Node:
    items = [p for p in _split_top(inner, _COMMA) if p]
    if opener == "\\{":
        return Group("set", tuple(_parse(i) for i in items))
    if opener == "{" or (len(items) == 1 and opener in ("(", "\\langle")):
        return _parse(inner)  # grouping, not a structure: `(5)`, `{x}`
    if len(items) < 2:
        return Leaf.of(f"{opener}{inner}{closer}")
    # Two items in [ ], [ ), ( ] are an interval; longer tuples are vectors whatever their brackets.
    brackets = "()" if opener == "\\langle" or len(items) > 2 else opener + closer
    kind = "interval" if len(items) == 2 and brackets != "()" else "tuple"
    return Group(kind, tuple(_parse(i) for i in items), brackets)


def _brackets(text: str):
    """(index, token, depth change) for every bracket in `text`; escaped
    braces `\\{` `\\}` count as brackets."""
    index = 0
    while index < len(text):
        for token in ("\\{", "\\}", "\\langle", "\\rangle"):
            if text.startswith(token, index):
                yield index, token, 1 if token in ("\\{", "\\langle") else -1
                index += len(token)
                break
        else:
            char = text[index]
            if char in "([{" or char in ")]}":
                yield index, char, 1 if char in "([{" else -1
            index += 1 if char != "\\" else 2


def _split_top(text: str, separator: re.Pattern) -> list[str]:
    """`text` split where `separator` matches outside every bracket."""
    changes = [0] * (len(text) + 1)
    for index, token, change in _brackets(text):
        changes[index + len(token)] += change
    depth_after = list(accumulate(changes))
    parts = []
    start = 0
    for found in separator.finditer(text):
        if found.end() > found.start() and found.start() >= start and depth_after[found.start()] == 0:
            parts.append(text[start : found.start()].strip())
            start = found.end()
    return [*parts, text[start:].strip()]


def _enclosing(text: str) -> tuple[str, str, str] | None:
    """(opener, inside, closer) when one pair of brackets encloses all
    of `text`; `[1, 2)` counts as a pair."""
    tokens = list(_brackets(text))
    if not tokens or tokens[0][0] != 0 or tokens[0][2] != 1:
        return None
    depth = 0
    for index, token, change in tokens:
        depth += change
        if depth == 0:
            if index + len(token) != len(text) or token not in _CLOSERS:
                return None
            opener = tokens[0][1]
            return opener, text[len(opener) : index], token
    return None
