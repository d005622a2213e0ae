"""Answers compared as strings: the light normal form (same string, same answer) and text answers (`odd`,
`\\text{Even}`, `(C)`, names). Nothing here parses mathematics or drops a character that carries meaning."""

from __future__ import annotations

import re

from sdfb.grading.normalise import prepare, words

# Spacing that carries no meaning: LaTeX spacing commands, and spaces next to anything but a letter or digit.
_SPACING = re.compile(r"\\[,;!: ]|\\q?quad\b")
_LOOSE_SPACE = re.compile(r"\s+(?=[^\w\s])|(?<=[^\w\s])\s+")
_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|textsf|mathrm|mbox)\s*\{(?P<inner>[^{}]*)\}")
_CHOICE = re.compile(r"\(?\s*(?P<paren>[A-Za-z])\s*\)|(?P<bare>[A-Za-z])")  # (C), C), C
_WORDS = re.compile(r"[A-Za-z][A-Za-z' \-]*")
_PREDICATE = re.compile(r"^.*?\b(?:is|are)\s+(?P<rest>.+)$")
# Words that are an answer on their own, without a \text{} around them.
ANSWER_WORDS = words("yes no true false even odd neither both none always never sometimes undefined")


def light_form(answer: str) -> str:
    """The answer with only meaningless differences removed: delimiters, `\\left` / `\\right`, `\\dfrac`,
    spacing, text wrappers and a final full stop. Two answers with the same light form are the same answer."""
    text = prepare(answer)
    if text is None:
        return answer
    text = _SPACING.sub(" ", text)
    while (found := _WRAPPER.search(text)) is not None:
        text = text[: found.start()] + found.group("inner") + text[found.end() :]
    return _LOOSE_SPACE.sub("", " ".join(text.split())).rstrip(".")


def text_key(answer: str, loose: bool = False) -> str | None:
    """The answer as text (`text:odd`, `choice:C`), or None when it is not a text answer.

    Text answers: a whole `\\text{...}` (or `\\textbf`, `\\mathrm`, `\\mbox`) of words, a letter choice
    `(C)`, and the words in ANSWER_WORDS (`odd`, `Even`, `neither`). With `loose`, any words and a bare
    letter count too: that reading is used only against a text answer (`Evelyn` against `\\text{Evelyn}`,
    `C` against `\\text{(C)}`). Case is ignored; `The function is odd` reads as `odd`.
    """
    text = prepare(answer)
    if text is None:
        return None
    explicit = False
    while (found := _WRAPPER.fullmatch(text)) is not None:
        text = found.group("inner").strip().rstrip(".").strip()
        explicit = True
    choice = _CHOICE.fullmatch(text)
    if choice:
        letter = choice.group("paren") or choice.group("bare")
        return f"choice:{letter.upper()}" if explicit or loose or choice.group("paren") else None
    if not _WORDS.fullmatch(text):
        return None
    words = " ".join(text.lower().split())
    predicate = _PREDICATE.match(words)
    if predicate:
        words = predicate.group("rest")
    return f"text:{words}" if explicit or loose or words in ANSWER_WORDS else None


def is_text(answer: str) -> bool:
    """Whether the answer is words only (a text answer in the loose sense): never split into parts."""
    return text_key(answer, loose=True) is not None
