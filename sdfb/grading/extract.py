"""Final-answer extraction from a completion: answer lines, `####` lines and `\\boxed{}` with nested braces.

It returns the answer as written (markdown and `$` removed); turning it into something a checker parses is
`sdfb.grading.normalise`'s job.
"""

from __future__ import annotations

import re

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
# What may stand between boxes that give one answer together: `\boxed{1}, \boxed{2}`, `$\boxed{2}$ and
# $\boxed{6}$`.
_BOX_JOIN = re.compile(
    r"(?:\s|[,;&$]|\\[()\[\],;!: ]|\\q?quad\b|\\text\s*\{\s*(?:and|or|,)?\s*\}|\band\b|\bor\b)*",
    re.IGNORECASE,
)
# "Answer: 14", "**Final Answer:** 14", "> answer = 14" at the start of a line, "Answer $14$" / "Answer \[ 14
# \]" (no colon, a formula after it), or a "**Final Answer**" heading line (its value on the next line).
_ANSWER_LINE = re.compile(
    r"^[ \t>#*_-]*(?:the[ \t]+)?(?:final[ \t]+)?answer[ \t]*(?:\*\*)?[ \t]*"
    r"(?:[:=][ \t]*(?:\*\*)?[ \t]*(?P<value>[^\n]*)|(?P<formula>(?:\$|\\\[|\\\()[^\n]*)|[ \t*:]*$)",
    re.IGNORECASE | re.MULTILINE,
)
_OUTER = re.compile(r"^(?:\$\$?|\\\[|\\\()\s*(.*?)\s*(?:\$\$?|\\\]|\\\))[ \t.]*$", re.DOTALL)
_FORMULA = re.compile(r"(?:\$\$?[^$]+\$\$?|\\\[.*?\\\]|\\\(.*?\\\))[ \t.]*|\$\$|\\\[")
# Inside a line ("so the final answer is 14", "my final answer: $9$"; not "to check the answer: 12 - 3 = 9"),
# only when a value that looks like an answer follows: "the answer is correct" is no answer.
_ANSWER_IS = re.compile(
    r"\b(?:(?:final\s+)?answers?\s+(?:is|are|would\s+be|will\s+be|should\s+be)\b(?:\s+(?:therefore|thus|then|clearly))?"
    r"\s*:?|(?:final|my)\s+answer\s*(?:\*\*)?\s*:)"
    r"(?:\*\*)?[ \t]*"
    r"(?P<value>(?=[-+$\\(\[{*.\d\u2212]|[A-E][ \t]*(?:[.,)]|$)"
    r"|(?:even|odd|neither|yes|no)\b[ \t]*(?:[.,!]|$))"
    r"[^\n]*)",
    re.IGNORECASE | re.MULTILINE,
)
_HASHES = re.compile(r"^[ \t]*####[ \t]*(?P<value>[^\n]*)", re.MULTILINE)
_NEXT_LINE = re.compile(r"\s*\n\s*(?P<value>\S[^\n]*)")
_DISPLAY_BLOCK = re.compile(r"\s*(?:\$\$(?P<dollars>.*?)\$\$|\\\[(?P<brackets>.*?)\\\])", re.DOTALL)
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_SENTENCE_END = re.compile(r"\.\s+(?=[A-Z])")


def extract_answer(text: str) -> str | None:
    """The completion's final answer: whichever answer marker comes last in
    the text, or None when there is none.

    Markers: an `Answer:` / `Final Answer:` line (its value, or the next line when it is empty), `Answer
    $9$` and `Answer \\[ 9 \\]` without a colon, `the answer is ...` or `answer: ...` inside a line, a
    GSM8K `#### ...` line, and `\\boxed{...}` (braces may nest: `\\boxed{\\frac{1}{2}}`). Boxes that only
    commas, `and`, `or` or math delimiters separate are one answer, their contents joined by commas
    (`\\boxed{1}, \\boxed{2}` -> `1, 2`). A marker whose value holds a box counts as that box. The last one
    counts because models revise ("Answer: 12 ... wait, that is wrong ... Answer: 14"); an answer line
    after a box overrides it for the same reason. Prose with no marker at all (`so 5 + 9 = 14`) is no
    answer: the number a model happens to write last is not one.
    """
    candidates = _boxes(text)
    for pattern in (_ANSWER_LINE, _ANSWER_IS, _HASHES):
        for found in pattern.finditer(text):
            candidates.append((found.start(), _marker_value(text, found)))
    answers = [value for _, value in sorted(candidates, key=lambda c: c[0]) if value]
    return answers[-1] if answers else None


def _marker_value(text: str, found: re.Match) -> str | None:
    groups = found.groupdict()
    if groups.get("formula") is not None:
        if not _FORMULA.fullmatch(groups["formula"]):
            return None  # "The answer $x$ must be positive" is talk about the answer
        if groups["formula"].strip() in ("$$", "\\["):
            return _line_value(_value_below(text, found.start("formula")))
        return _line_value(_OUTER.sub(r"\1", groups["formula"]))
    value = groups.get("value") or ""
    if not value.strip() and "formula" in groups:
        value = _value_below(text, found.end())
    return _line_value(value)


def _boxes(text: str) -> list[tuple[int, str | None]]:
    """(start, content) per run of boxes; a box that never closes has content None."""
    runs: list[tuple[int, str | None]] = []
    previous_end = -1
    for found in _BOX.finditer(text):
        content, end = _box_content(text, found.end())
        joined = runs and runs[-1][1] and content and found.start() >= previous_end >= 0
        if joined and _BOX_JOIN.fullmatch(text, previous_end, found.start()):
            runs[-1] = (runs[-1][0], f"{runs[-1][1]}, {content}")
        else:
            runs.append((found.start(), content))
        previous_end = end if content else -1
    return runs


def _value_below(text: str, end: int) -> str:
    """The value under an empty answer line: a `$$...$$` / `\\[...\\]` block, else the next non-empty line."""
    block = _DISPLAY_BLOCK.match(text, end)
    if block:
        return " ".join((block.group("dollars") or block.group("brackets") or "").split())
    after = _NEXT_LINE.match(text, end)
    return after.group("value") if after else ""


def _line_value(value: str) -> str | None:
    boxes = _boxes(value)
    if boxes:  # a box that never closes (the completion was cut off) is no answer
        closed = [content for _, content in boxes if content]
        return closed[-1] if closed else None
    return _clean(_SENTENCE_END.split(value, maxsplit=1)[0])


def _box_content(text: str, start: int) -> tuple[str | None, int]:
    """(content, end) of the box whose opening brace ends at `start`; content None when it never closes."""
    depth = 1
    for index in range(start, len(text)):
        char = text[index]
        if char == "{" and text[index - 1] != "\\":
            depth += 1
        elif char == "}" and text[index - 1] != "\\":
            depth -= 1
            if depth == 0:
                return _clean(text[start:index]), index + 1
    return None, len(text)


def _clean(answer: str) -> str | None:
    answer = _BOLD.sub(r"\1", answer).replace("\\$", "").replace("$", "").strip()
    for _ in range(2):  # "**73**." and "73.**" alike
        answer = answer.removeprefix("**").removesuffix("**").strip().rstrip(".").strip()
    return answer or None
