"""Final-answer extraction from a completion: answer lines, `####` lines and `\\boxed{}` with nested braces.

It returns the answer as written (markdown and `$` removed); turning it into something a checker parses is
`sdfb.grading.normalise`'s job.
"""

from __future__ import annotations

import re

_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
# "Answer: 14", "**Final Answer:** 14", "> answer = 14" at the start of a line, or a "**Final Answer**" heading
# line (its value on the next line); "the answer is 14" anywhere in a line.
_ANSWER_LINE = re.compile(
    r"^[ \t>#*_-]*(?:the[ \t]+)?(?:final[ \t]+)?answer[ \t]*(?:\*\*)?[ \t]*"
    r"(?:[:=][ \t]*(?:\*\*)?[ \t]*(?P<value>[^\n]*)|[ \t*:]*$)",
    re.IGNORECASE | re.MULTILINE,
)
# Only when a value that looks like mathematics follows: "the answer is correct" is no answer.
_ANSWER_IS = re.compile(
    r"\b(?:final\s+)?answer\s+is\s*:?[ \t]*(?P<value>(?=[-+$\\(\[{*.\d\u2212])[^\n]*)", re.IGNORECASE
)
_HASHES = re.compile(r"^[ \t]*####[ \t]*(?P<value>[^\n]*)", re.MULTILINE)
_NEXT_LINE = re.compile(r"\s*\n\s*(?P<value>\S[^\n]*)")
_DISPLAY_BLOCK = re.compile(r"\s*(?:\$\$(?P<dollars>.*?)\$\$|\\\[(?P<brackets>.*?)\\\])", re.DOTALL)
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_SENTENCE_END = re.compile(r"\.\s+(?=[A-Z])")


def extract_answer(text: str) -> str | None:
    """The completion's final answer: whichever answer marker comes last in the text, or None when there is none.

    Markers: an `Answer:` / `Final Answer:` line (its value, or the next line when it is empty), `the answer
    is ...`, a GSM8K `#### ...` line, and `\\boxed{...}` (braces may nest: `\\boxed{\\frac{1}{2}}`). A marker
    whose value holds a box counts as that box. The last one counts because models revise ("Answer: 12 ...
    wait, that is wrong ... Answer: 14"); an answer line after a box overrides it for the same reason. Prose
    with no marker at all (`so 5 + 9 = 14`) is no answer: the number a model happens to write last is not one.
    """
    candidates = [(m.start(), _box_content(text, m.end())) for m in _BOX.finditer(text)]
    for pattern in (_ANSWER_LINE, _ANSWER_IS, _HASHES):
        for found in pattern.finditer(text):
            value = found.group("value") or ""
            if not value.strip() and pattern is _ANSWER_LINE:
                value = _value_below(text, found.end())
            candidates.append((found.start(), _line_value(value)))
    answers = [value for _, value in sorted(candidates, key=lambda c: c[0]) if value]
    return answers[-1] if answers else None


def _value_below(text: str, end: int) -> str:
    """The value under an empty answer line: a `$$...$$` / `\\[...\\]` block, else the next non-empty line."""
    block = _DISPLAY_BLOCK.match(text, end)
    if block:
        return " ".join((block.group("dollars") or block.group("brackets") or "").split())
    after = _NEXT_LINE.match(text, end)
    return after.group("value") if after else ""


def _line_value(value: str) -> str | None:
    boxes = [_box_content(value, m.end()) for m in _BOX.finditer(value)]
    if boxes:  # a box that never closes (the completion was cut off) is no answer
        closed = [b for b in boxes if b]
        return closed[-1] if closed else None
    return _clean(_SENTENCE_END.split(value, maxsplit=1)[0])


def _box_content(text: str, start: int) -> str | None:
    """The content of the box whose opening brace ends at `start`; None when the braces never close."""
    depth = 1
    for index in range(start, len(text)):
        char = text[index]
        if char == "{" and text[index - 1] != "\\":
            depth += 1
        elif char == "}" and text[index - 1] != "\\":
            depth -= 1
            if depth == 0:
                return _clean(text[start:index])
    return None


def _clean(answer: str) -> str | None:
    answer = _BOLD.sub(r"\1", answer).replace("\\$", "").replace("$", "").strip()
    answer = answer.removeprefix("**").removesuffix("**").strip().rstrip(".").strip()
    return answer or None
