"""Answer normalisation: notation rewritten by the same rules for gold and
prediction, one answer part at a time.

It rewrites notation (unicode, delimiters, thousands separators, units, currency, percent) with
regexes and evaluates nothing; splitting an answer into its parts is `sdfb.grading.structure`'s
job. Every rule that drops something (a unit, a separator, the words around a number) is refused
where the result could equal a different answer.
"""

from __future__ import annotations

import re

# Longer answers are `unparseable` without being parsed: no final answer is this long, and math-verify would
# log the whole input on failure.
MAX_ANSWER_CHARS = 1000

_UNICODE = {
    "\u2212": "-",
    "\u2013": "-",
    "\u00d7": r"\times ",
    "\u00f7": r"\div ",
    "\u00b7": r"\cdot ",
    "\u03c0": r"\pi ",
    "\u221e": r"\infty ",
    "\u221a": r"\sqrt",
    "\u00b0": r"^\circ",
    "\u00b2": "^2",
    "\u00b3": "^3",
    "\u2264": r"\le ",
    "\u2265": r"\ge ",
    "\u2260": r"\ne ",
    "\u00a0": " ",
    "\u20ac": "",
    "\u00a3": "",
    "\u00a5": "",
    "\u20b9": "",
}
_SPACES = {"\u202f": " ", "\u2009": " "}  # narrow and thin spaces: `1\u202f000`
# Python, not mathematics: such an answer is never handed to a parser.
_CODE = re.compile(r"\*\*|__|`|\bimport\b|\blambda\b|\w\(\s*['\"]|[A-Za-z_]\w*\.[A-Za-z_]\w*\(")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_DELIMITERS = re.compile(r"^(?:\$\$?|\\\(|\\\[)\s*(.*?)\s*(?:\$\$?|\\\)|\\\])$", re.DOTALL)
_REWRITES = [
    (re.compile(r"\\[dt]frac\b"), r"\\frac"),
    (re.compile(r"\\(?:left|right)(?:\.|\b)"), ""),
    # Currency; math delimiters are gone by now. A dollar sign before a number is kept as a unit (`\$5` is not
    # `5 cents`); any other dollar sign goes.
    (re.compile(r"\\?\$\s*(\d+(?:,\d{3})*(?:\.\d+)?)"), r"\1\\text{ dollars}"),
    (re.compile(r"\\\$|\$"), ""),
    (re.compile(r"\\mathrm\s*\{\s*([ei])\s*\}"), r"\1"),  # Euler's e, the imaginary unit
    (re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox)\s*\{\s*([-+]?\d[\d.,]*)\s*\}"), r"\1"),  # \text{13}
    # Thousands written as LaTeX (1{,}234, MATH's 10,\!000, thin spaces 1\,234) are never list separators; a
    # plain comma or space is one only when the whole answer is that number (`whole_number`).
    (re.compile(r"(?<=\d)(?:\{,\}|,\s*\\!\s*|\\[,;: ]|~)(?=\d{3}(?!\d))"), ""),
    (re.compile(r"(?<!\\)\\[,;!: ]|~"), " "),  # spacing commands, not the row break \\
]
_LEAF_REWRITES = [
    (re.compile(r"(?<!\\)\bsqrt\s*\(([^()]*)\)"), r"\\sqrt{\1}"),
    (re.compile(r"(?<!\\)\b(pi|infty|sin|cos|tan|cot|sec|csc|log|ln|exp)\b"), r"\\\1"),
    (re.compile(r"(?<!\\)\b(?:infinity|inf)\b"), r"\\infty"),
]
_GROUPED_NUMBER = re.compile(r"[-+]?\d{1,3}(?P<sep>[, ])\d{3}(?:(?P=sep)\d{3})*(?:\.\d+)?")

# Units: a trailing percent or degree sign, a trailing \text{...} (with an optional power), or a trailing run
# of words after a number. Words that change what the number means are never a unit.
_PERCENT = re.compile(r"\s*(?:\\?%|\bper\s*cent\b|\bpercent(?:age)?\b)\s*$")
_DEGREES = re.compile(r"\s*(?:\^\s*\{?\s*\\circ\s*\}?|\\circ\b|\\degree\b|\bdegrees?\b)\s*$")
_TEXT_UNIT = re.compile(
    r"(?<=\S)\s*\\(?:text|mbox|mathrm|textrm|textbf|textit)\s*\{(?P<unit>[^{}]*)\}(?P<power>\s*\^\s*\{?\d\}?)?\s*$"
)
_WORD_UNITS = re.compile(r"(?<=[\d})])(?P<unit>(?:\s+[A-Za-z]{2,}[A-Za-z./]*(?:\^\d)?)+)\s*$")
_MATH_WORDS = {"pi", "infty", "sin", "cos", "tan", "cot", "sec", "csc", "log", "ln", "exp", "sqrt", "frac"}


def words(text: str) -> frozenset[str]:
    """The words of a literal table written as one string."""
    return frozenset(text.split())


# Words that bound, negate, scale or join: `5 million`, `5 or more`, `not 5`, `less than 5` are not 5.
BLOCKERS = words(
    """not no non never neither nor either less more fewer greater smaller larger least most than except
    without between above below under over before after almost nearly within plus minus times divided half
    twice double
    triple hundred thousand million billion trillion dozen hundreds thousands millions billions dozens
    squared cubed root roots"""
)
_NOT_UNITS = BLOCKERS | words("and or is are was were be equals the of at to if for when only all")
# Unit spellings read as one: `name=canonical`.
_UNIT_ALIASES = dict(
    pair.split("=")
    for pair in words(
        """centimeter=cm centimetre=cm meter=m metre=m kilometer=km kilometre=km millimeter=mm millimetre=mm
        inch=in foot=ft feet=ft yard=yd mile=mi second=s sec=s minute=min hour=h hr=h gram=g kilogram=kg
        pound=lb lbs=lb ounce=oz liter=l litre=l milliliter=ml per=/ degree=deg radian=rad"""
    )
)
_GENERIC_UNITS = {"unit", "units"}

# Prose: a word of three letters or more outside LaTeX commands, or a short English word.
_COMMAND = re.compile(r"\\(?:begin|end|operatorname)\s*\{[^{}]*\}|\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]{3,}|\b(?:is|of|in|so|an|at|to|by|on|it|be|we|as|if|or)\b", re.IGNORECASE)
_PREDICATE = re.compile(r"\b(?:is|are|was|were|equals|be)\b", re.IGNORECASE)
_ENGLISH_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]+|[aI]")


def prepare(answer: str) -> str | None:
    """The answer with notation rewritten, or None when it must not be parsed at all.

    None: longer than MAX_ANSWER_CHARS, or written as code (`**`, `__`, `import`, a call with a string
    argument such as `eval('1+1')`, an attribute call such as `os.system(...)`).
    """
    if len(answer) > MAX_ANSWER_CHARS:
        return None
    text = " ".join(answer.translate(str.maketrans({**_UNICODE, **_SPACES})).split())
    text = _BOLD.sub(r"\1", text)
    if _CODE.search(text):
        return None
    while (found := _DELIMITERS.match(text)) and found.group(1):
        text = found.group(1)
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    return " ".join(text.split()).rstrip(".").strip()


def whole_number(text: str) -> str:
    """`1,234` and `1 000` (groups of exactly three digits) as one number, but only when the whole answer,
    units aside, is that number: in `(1,234)`, `\\{1,234\\}` or `1, 234` the comma separates two values."""
    stripped, _ = strip_units(text)
    if _GROUPED_NUMBER.fullmatch(stripped):
        return stripped.replace(",", "").replace(" ", "") + text[len(stripped) :]
    return text


def leaf_form(part: str) -> tuple[str | None, str]:
    """(checker form, canonical unit) of one answer part.

    The form is None when the part is prose (words around its mathematics, `She has 14 apples`): the caller
    decides what such an answer means (`prose_value`), never this function.
    """
    for pattern, replacement in _LEAF_REWRITES:
        part = pattern.sub(replacement, part)
    text, unit = strip_units(part)
    if _WORD.search(_COMMAND.sub(" ", text)):
        return None, unit
    return text or None, unit


def strip_units(text: str) -> tuple[str, str]:
    """(text without its trailing units, the units in a canonical spelling: `cm^2`, `km/h`, `%`, `deg`)."""
    units: list[str] = []
    while (stripped := _strip_one_unit(text, units)) != text:
        text = stripped
    return text, _canonical_unit(units)


def _strip_one_unit(text: str, units: list[str]) -> str:
    for pattern, name in ((_PERCENT, "%"), (_DEGREES, "deg")):
        stripped = pattern.sub("", text).strip()
        if stripped != text and stripped:
            units.append(name)
            return stripped
    found = _TEXT_UNIT.search(text) or _WORD_UNITS.search(text)
    if found and _is_unit(found.group("unit")) and found.group("unit").strip() not in ("e", "i"):
        power = found.groupdict().get("power") or ""
        units.append(found.group("unit") + power)
        return text[: found.start()].strip()
    return text


def _is_unit(words: str) -> bool:
    tokens = set(re.findall(r"[a-z]+", words.lower()))
    return bool(tokens) and not tokens & (_NOT_UNITS | _MATH_WORDS)


def _canonical_unit(raw: list[str]) -> str:
    """One spelling per unit, so `12 square centimeters` and `12\\text{ cm}^2` agree and `5 minutes` and
    `5 hours` do not; a generic `units` is no unit."""
    parts = []
    for unit in reversed(raw):  # stripped from the end, read from the start
        text = unit.lower().replace("sq.", "square")
        power = re.search(r"\^\s*\{?(\d)", text)
        words = [w for w in re.findall(r"[a-z]+|/|%", text) if w not in _GENERIC_UNITS]
        squared = {"square", "squared", "sq"} & set(words)
        cubed = {"cubic", "cubed"} & set(words)
        suffix = "^2" if squared else "^3" if cubed else f"^{power.group(1)}" if power else ""
        words = [_UNIT_ALIASES.get(_singular(w), _singular(w)) for w in words if w not in squared | cubed]
        if words:
            parts.append(("".join(words) if "/" in words else " ".join(words)) + suffix)
    return " ".join(parts)


def _singular(word: str) -> str:
    if word in _UNIT_ALIASES or len(word) <= 3:
        return word
    if word.endswith(("ches", "shes", "xes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def prose_value(text: str) -> str | None:
    """The value a sentence states, or None when it states none or several.

    After `is` / `are` / `equals` when what follows is one value (`The volume of ABCDEFGH is
    120`); else its one run of mathematics (`She has 14 apples left` -> 14). None when a word
    bounds, negates or scales the value (`less than 5`, `not 5`, `5 million`) or when there are
    two runs (`In 2 hours she walks 14 miles`).
    """
    words = {w.lower() for w in re.findall(r"[A-Za-z]+", _COMMAND.sub(" ", text))}
    if words & BLOCKERS:
        return None
    spans = _math_spans(text)
    return spans[0] if len(spans) == 1 else None


def after_predicate(text: str) -> str | None:
    """What follows the first `is` / `are` / `equals` / `be` in a sentence, or None when there is none."""
    found = _PREDICATE.search(text)
    return text[found.end() :].strip() or None if found else None


def _math_spans(text: str) -> list[str]:
    """Runs of tokens that are not words (single letters count as
    variables), each holding a digit or a command."""
    spans: list[list[str]] = [[]]
    for token in text.split():
        bare = token.strip(".,;:!?")
        if _ENGLISH_WORD.fullmatch(bare.strip("()")):  # `14 (apples)`: a remark in brackets is words
            spans.append([])
        elif bare:
            spans[-1].append(bare)
    return [" ".join(s) for s in spans if any(re.search(r"[\d\\]", t) for t in s)]
