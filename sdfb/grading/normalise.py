"""Answer normalisation: one LaTeX string per answer for the checkers, by the same rules for gold and prediction.

It rewrites notation (units, currency, percent, thousands separators, unicode) with regexes; it evaluates nothing.
"""

from __future__ import annotations

import re

# Longer answers are `unparseable` without being parsed: no final answer is this long, and math-verify would log
# the whole input on failure.
MAX_ANSWER_CHARS = 1000

_UNICODE = {
    "\u2212": "-", "\u2013": "-", "\u00d7": r"\times ", "\u00f7": r"\div ", "\u00b7": r"\cdot ",
    "\u03c0": r"\pi ", "\u221e": r"\infty ", "\u221a": r"\sqrt", "\u00b0": r"^\circ", "\u00b2": "^2",
    "\u00b3": "^3", "\u2264": r"\le ", "\u2265": r"\ge ", "\u2260": r"\ne ", "\u00a0": " ",
    "\u20ac": "", "\u00a3": "", "\u00a5": "", "\u20b9": "",
}  # fmt: skip
# Python, not mathematics: such an answer is never handed to a parser.
_CODE = re.compile(r"\*\*|__|`|\bimport\b|\blambda\b|\w\(\s*['\"]|[A-Za-z_]\w*\.[A-Za-z_]\w*\(")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_DELIMITERS = re.compile(r"^(?:\$\$?|\\\(|\\\[)\s*(.*?)\s*(?:\$\$?|\\\)|\\\])$", re.DOTALL)
_REWRITES = [
    (re.compile(r"\\[dt]frac\b"), r"\\frac"),
    (re.compile(r"\\(?:left|right)(?:\.|\b)"), ""),
    (re.compile(r"\\\$|\$"), ""),  # currency; math delimiters are gone by now
    (re.compile(r"\\?%|\s*\bper\s*cent\b|\s*\bpercent(?:age)?\b"), ""),
    (re.compile(r"\^\s*\{?\\circ\}?|\\circ\b|\\degree\b|\s*\bdegrees?\b"), ""),
    (re.compile(r"(?<=\d)(?:\{,\}|,\s*\\!)(?=\d)"), ","),  # 1{,}234 and MATH's 10,\!000
    (re.compile(r"(?<=\d)(?:\\[,;!: ]|~)(?=\d{3}\b)"), ""),  # thin-space thousands: 1\,234
    (re.compile(r"(?<!\\)\\[,;!: ]|~"), " "),  # spacing commands, not the row break \\
    (re.compile(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+)(?![\d,])"), lambda m: m.group(1).replace(",", "")),
    (re.compile(r"(?<!\\)\bsqrt\s*\(([^()]*)\)"), r"\\sqrt{\1}"),
    (re.compile(r"(?<!\\)\b(pi|infty|sin|cos|tan|cot|sec|csc|log|ln|exp)\b"), r"\\\1"),
    (re.compile(r"(?<!\\)\b(?:infinity|inf)\b"), r"\\infty"),
    (re.compile(r"(?<=[\d})])\s+and\s+(?=[-\w\\({])"), ", "),  # "3 and 5" lists two answers
]
_MATH_WORDS = {"pi", "infty", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "frac"}
# A unit: a trailing \text{...} (with an optional power), or a trailing run of words of two or more letters.
_TEXT_UNIT = re.compile(r"(?<=\S)\s*\\(?:text|mbox|mathrm|textrm)\s*\{[^{}]*\}(?:\s*\^\s*\{?\d\}?)?\s*$")
_WORD_UNITS = re.compile(r"(?<=[\d})])((?:\s+[A-Za-z]{2,}[A-Za-z./]*(?:\^\d)?)+)\s*$")
# An answer that is text on purpose (MATH's \text{Evelyn}, \text{(C)}) is compared as math-verify compares names.
_TEXT_ANSWER = re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{[^{}\d]*\}")
_COMMAND = re.compile(r"\\(?:begin|end|operatorname)\s*\{[^{}]*\}|\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]{3,}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:/\d+)?")


def checker_form(answer: str) -> str | None:
    """The answer as a LaTeX string both checkers parse (without `$`), or None when it must not be parsed.

    None means `unparseable`: longer than MAX_ANSWER_CHARS, or written as code (`**`, `__`, `import`, a call
    with a string argument such as `eval('1+1')`, an attribute call such as `os.system(...)`). A percent
    sign, a degree sign, currency and trailing units are dropped, so `25%` equals a gold `25` (and not `0.25`),
    `$5`, `5 dollars` and `\\$5.00` equal `5`, `12 cm` equals `12`. Thousands separators go (`1,234` -> 1234)
    when every group after the first has three digits; `1, 234` stays a list. Prose keeps its last number
    (`She has 14 apples left` -> 14); prose without a number is None, unless it is all one `\\text{...}`.
    """
    if len(answer) > MAX_ANSWER_CHARS:
        return None
    text = " ".join(answer.translate(str.maketrans(_UNICODE)).split())
    text = _BOLD.sub(r"\1", text)
    if _CODE.search(text):
        return None
    text = _strip_delimiters(text)
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    text = _strip_units(text.strip().rstrip(".").strip())
    if _is_prose(text) and not _TEXT_ANSWER.fullmatch(text):
        numbers = _NUMBER.findall(text)
        return numbers[-1] if numbers else None
    return text or None


def _strip_delimiters(text: str) -> str:
    while (found := _DELIMITERS.match(text)) and found.group(1):
        text = found.group(1)
    return text


def _strip_units(text: str) -> str:
    while True:
        stripped = _TEXT_UNIT.sub("", text)
        found = _WORD_UNITS.search(stripped)
        if found and not set(found.group(1).lower().replace("/", " ").split()) & _MATH_WORDS:
            stripped = stripped[: found.start()]
        if stripped == text:
            return text.strip()
        text = stripped.strip()


def _is_prose(text: str) -> bool:
    return bool(_WORD.search(_COMMAND.sub(" ", text)))
