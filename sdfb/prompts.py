"""Prompt rendering and the solver's step format: one function renders the student prompt, one the teacher's,
both through the tokenizer's chat template (with `enable_thinking` when the config sets it). Nothing here
truncates a prompt; text inside a `<think>` block is never a step or an answer."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

_STEP = re.compile(r"^\s*(?:\*\*)?step\s*(\d+)\s*[:.)]\s*(?:\*\*)?\s*(.*?)\s*$", re.IGNORECASE)
_ANSWER = re.compile(
    r"^\s*(?:\*\*)?(?:final\s+)?answer\s*[:=]\s*(?:\*\*)?\s*(.*?)\s*(?:\*\*)?\s*$", re.IGNORECASE
)
_THINK = re.compile(r"</?think>")
_EQUATION = re.compile(r"(-?\d+(?:\.\d+)?)\s*([-+*x×/])\s*(-?\d+(?:\.\d+)?)\s*=\s*(-?\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class Template:
    version: str
    system: str
    student: str
    teacher: str
    contexts: dict[str, str]
    # Worked examples shown as earlier chat turns (user question, assistant solution), same for both roles.
    examples: tuple[tuple[str, str], ...] = ()
    # Passed to the chat template as `enable_thinking` (Qwen3's switch); None: not passed, the template
    # decides.
    enable_thinking: bool | None = None


@cache
def load_template(version: str, enable_thinking: bool | None = None) -> Template:
    try:
        text = resources.files("sdfb.templates").joinpath(f"{version}.yaml").read_text()
    except FileNotFoundError:
        known = sorted(
            p.name.removesuffix(".yaml")
            for p in resources.files("sdfb.templates").iterdir()
            if p.name.endswith(".yaml")
        )
        raise ValueError(f"prompt.template {version!r} does not exist; known templates: {known}") from None
    raw: dict[str, Any] = yaml.safe_load(text)
    examples = tuple((e["question"], e["solution"]) for e in raw.get("examples") or ())
    return Template(
        raw["version"],
        raw["system"],
        raw["student"],
        raw["teacher"],
        dict(raw["contexts"]),
        examples,
        enable_thinking,
    )


def _chat(tokenizer, template: Template, user: str) -> str:
    messages = [{"role": "system", "content": template.system}]
    for question, solution in template.examples:
        messages.append({"role": "user", "content": template.student.format(question=question)})
        messages.append({"role": "assistant", "content": solution})
    messages.append({"role": "user", "content": user})
    # Only a set flag is passed: a template that does not know the variable renders exactly as before.
    flag = {} if template.enable_thinking is None else {"enable_thinking": template.enable_thinking}
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **flag)


def render_student_prompt(tokenizer, template: Template, question: str) -> str:
    """The student sees the question only."""
    return _chat(tokenizer, template, template.student.format(question=question))


def render_teacher_prompt(tokenizer, template: Template, question: str, context: str) -> str:
    """The self-teacher sees the question plus the feedback context,
    under the same system prompt and template."""
    if not context.strip():
        return render_student_prompt(tokenizer, template, question)
    return _chat(tokenizer, template, template.teacher.format(question=question, context=context))


def render_context(template: Template, condition: str, **fields: str) -> str:
    """Fill the condition's context template (`solution`, `critique`, `attempt_answer`, `verdict`)."""
    if condition not in template.contexts:
        raise ValueError(
            f"condition {condition!r} has no context in template "
            f"{template.version}; known: {list(template.contexts)}"
        )
    return template.contexts[condition].format(**fields).strip()


@dataclass(frozen=True)
class ParsedAttempt:
    steps: tuple[str, ...]  # the text of each "Step k:" line after the label, in order of appearance
    step_lines: tuple[str, ...]  # the full lines, verbatim, for copying into a critique
    answer: str | None
    answer_line: str | None = None  # the answer line, verbatim

    @property
    def format_ok(self) -> bool:
        return bool(self.steps) and self.answer is not None and self.answer != ""


def _thinking_spans(text: str) -> list[tuple[int, int]]:
    """Character ranges of thinking, tags included: `<think>...</think>`, an unclosed `<think>` to the end,
    and a `</think>` that nothing opened back to the previous block (or the start: the prompt opened it)."""
    spans: list[tuple[int, int]] = []
    opened = None
    after = 0
    for tag in _THINK.finditer(text):
        if tag.group() == "<think>":
            opened = tag.start() if opened is None else opened
        else:
            spans.append((after if opened is None else opened, tag.end()))
            opened = None
            after = tag.end()
    if opened is not None:
        spans.append((opened, len(text)))
    return spans


def _cut(body: str, start: int, spans: list[tuple[int, int]]) -> str:
    """`body`, which starts at character `start` of its text, less the characters inside `spans`."""
    pieces = []
    at = start
    for a, b in spans:
        a, b = max(a, start), min(b, start + len(body))
        if a < b:
            pieces.append(body[at - start : a - start])
            at = b
    pieces.append(body[at - start :])
    return "".join(pieces)


def lines_outside_thinking(text: str) -> list[str]:
    """The lines of `text` as `str.splitlines` splits them, each less its thinking (a line wholly inside a
    `<think>` block comes back empty), so line numbers stay those of the text. `parse_attempt` reads these."""
    lines = text.splitlines()
    if "think>" not in text:
        return lines
    spans = _thinking_spans(text)
    out = []
    start = 0
    for body, line in zip(lines, text.splitlines(keepends=True), strict=True):
        out.append(_cut(body, start, spans))
        start += len(line)
    return out


def parse_attempt(text: str) -> ParsedAttempt:
    """Split a completion into its step lines and final answer; text outside that format is ignored, and so is
    thinking (see `lines_outside_thinking`)."""
    steps = []
    lines = []
    answer = None
    answer_line = None
    for line in lines_outside_thinking(text):
        if answer is not None and line.strip():
            # anything after the answer line is not part of the attempt (the model kept talking)
            break
        step = _STEP.match(line)
        if step:
            steps.append(step.group(2))
            lines.append(line.strip())
            continue
        found = _ANSWER.match(line)
        if found:
            answer = found.group(1).strip().rstrip(".")
            answer_line = line.strip()
    return ParsedAttempt(tuple(steps), tuple(lines), answer, answer_line)


@dataclass(frozen=True)
class Equation:
    left: float
    op: str
    right: float
    result: float

    def holds(self) -> bool:
        value = {"+": self.left + self.right, "-": self.left - self.right, "*": self.left * self.right}.get(
            self.op
        )
        if value is None and self.op == "/":
            value = self.left / self.right if self.right else None
        return value is not None and abs(value - self.result) < 1e-9


def parse_equation(step_text: str) -> Equation | None:
    """The last `a op b = c` in a step's text, or None."""
    found = _EQUATION.findall(step_text)
    if not found:
        return None
    left, op, right, result = found[-1]
    op = "*" if op in "x×" else op
    return Equation(float(left), op, float(right), float(result))
