"""The versioned critic prompt (files in sdfb/critic/prompts/, selected by name) and the reading of its
reply: the critic's own `<think>` reasoning is stripped, its tagged steps are parsed and rendered in the
solver's format. No model is called here."""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from sdfb.critic.base import Critique, CritiqueRequest, normalise_step, renumber
from sdfb.names import CriticCase, CritiqueStatus
from sdfb.prompts import ParsedAttempt

_THINK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)
_CASE = re.compile(r"<case>\s*([A-D])\b[^<]*</case>", re.IGNORECASE)
_FIRST_ERROR = re.compile(r"<first_error>\s*([^<]*?)\s*</first_error>", re.IGNORECASE)
_TAGGED_STEP = re.compile(r"<step_(\d+)>(.*?)</step_\1>", re.DOTALL | re.IGNORECASE)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
# A critic that repeats the solver's label inside the tag ("<step_1>Step 1: ...</step_1>"): the label is not
# content.
_LABEL = re.compile(r"^\s*(?:\*\*)?step\s*\d+\s*[:.)]\s*(?:\*\*)?\s*", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")


@dataclass(frozen=True)
class CriticPrompt:
    version: str
    system: str
    user: str
    cut_off_note: str
    content_hash: (
        str  # of the file: an edited prompt is a different cache key even if `version` was not bumped
    )

    def messages(self, request: CritiqueRequest, attempt: ParsedAttempt) -> list[dict[str, str]]:
        tagged = [f"<step_{k}>{step}</step_{k}>" for k, step in enumerate(attempt.steps, start=1)]
        tagged.append(f"<answer>{attempt.answer or ''}</answer>")
        cut_off = request.finish_reason == "length"
        user = self.user.format(
            question=request.question.strip(),
            solution=request.solution.strip(),
            attempt="\n".join(tagged),
            cut_off_note=self.cut_off_note if cut_off else "",
        )
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]


def known_prompts() -> list[str]:
    folder = resources.files("sdfb.critic.prompts")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


@cache
def load_critic_prompt(name: str) -> CriticPrompt:
    try:
        text = resources.files("sdfb.critic.prompts").joinpath(f"{name}.yaml").read_text()
    except FileNotFoundError:
        raise ValueError(
            f"critic.prompt {name!r} does not exist; known critic prompts: {known_prompts()}"
        ) from None
    raw = yaml.safe_load(text)
    return CriticPrompt(
        version=raw["version"],
        system=raw["system"],
        user=raw["user"],
        cut_off_note=raw.get("cut_off_note", ""),
        content_hash=hashlib.sha256(text.encode()).hexdigest()[:16],
    )


def strip_think(text: str) -> str | None:
    """The reply without the critic's reasoning, or None when the reasoning
    never ended (cut off while thinking).

    Reasoning models (QwQ, Qwen3) often have `<think>` in the chat template, so the reply holds only
    `</think>`: everything up to the last `</think>` is reasoning.
    """
    text = _THINK.sub("", text)
    if "</think>" in text.lower():
        text = text[text.lower().rindex("</think>") + len("</think>") :]
    if "<think>" in text.lower():
        return None
    return text.strip()


def _render(attempt: ParsedAttempt, steps: list[str], answer: str) -> str:
    """Critique steps in the solver's format: a step the critic copied keeps the attempt's own
    line, byte for byte (renumbered only when an inserted step moved it), so the teacher sees
    exactly the tokens the student wrote."""
    lines = [f"Step {k}: {' '.join(step.split())}" for k, step in enumerate(steps, start=1)]
    matcher = difflib.SequenceMatcher(
        None, [normalise_step(s) for s in attempt.steps], [normalise_step(s) for s in steps], autojunk=False
    )
    for block in matcher.get_matching_blocks():
        for offset in range(block.size):
            j = block.a + offset
            i = block.b + offset
            line = attempt.step_lines[j]
            lines[i] = line if i == j else renumber(line, i + 1)
    same_answer = attempt.answer_line and normalise_step(answer) == normalise_step(attempt.answer or "")
    return "\n".join([*lines, attempt.answer_line if same_answer else f"Answer: {' '.join(answer.split())}"])


def parse_reply(reply: str | None, attempt: ParsedAttempt) -> Critique:
    """A critic's reply -> a critique in the solver's format, or a
    `malformed` one that says what was missing."""
    raw = reply or ""

    def malformed(why: str) -> Critique:
        return Critique(CriticCase.NONE, -1, "", CritiqueStatus.MALFORMED, error=why, raw=raw)

    if not raw.strip():
        return malformed("the critic returned empty text")
    body = strip_think(raw)
    if body is None:
        return malformed(
            "the critic's reasoning never ended (<think> without </think>); raise critic.decoding.max_tokens"
        )
    case = _CASE.search(body)
    if case is None:
        return malformed("no <case>A-D</case> tag in the reply")
    tagged = _TAGGED_STEP.findall(body)
    if not tagged:
        return malformed("no <step_k> tags in the reply")
    numbers = [int(n) for n, _ in tagged]
    if numbers != list(range(1, len(numbers) + 1)):
        return malformed(f"step tags are not numbered 1..n in order: {numbers}")
    steps = [_LABEL.sub("", text).strip() for _, text in tagged]
    if any(not s for s in steps):
        return malformed("an empty <step_k> tag")
    answer = _ANSWER.findall(body)
    if not answer or not answer[-1].strip():
        return malformed("no <answer> tag in the reply")
    first = _FIRST_ERROR.search(body)
    number = _DIGITS.search(first.group(1)) if first else None  # "2", "Step 2", "step_2" all name step 2
    first_wrong = int(number.group()) if number else -1
    if first_wrong == 0:
        first_wrong = -1
    if first_wrong > len(attempt.steps) + 1:
        return malformed(
            f"<first_error> names step {first_wrong}, but the attempt has {len(attempt.steps)} steps"
        )
    return Critique(
        CriticCase(case.group(1).upper()),
        first_wrong,
        _render(attempt, steps, answer[-1].strip()),
        CritiqueStatus.OK,
        raw=raw,
    )
