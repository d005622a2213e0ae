"""Alignment checks on a critique against the attempt it rewrote: how much of the attempt's correct prefix was
copied verbatim, where the critique first departs from the attempt, and the final status a critique gets.
Pure functions; grading the critique's answer happens in the stage (it needs the grader's worker pool)."""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass

from sdfb.critic.base import normalise_step
from sdfb.names import CriticCase, CritiqueStatus
from sdfb.prompts import ParsedAttempt, parse_attempt

_VERDICTS = {
    CriticCase.REPRODUCE: True,
    CriticCase.INSERT_STEP: True,
    CriticCase.FINISH: False,
    CriticCase.FIX_ERROR: False,
}


@dataclass(frozen=True)
class Alignment:
    first_changed_step: (
        int  # 1-based in the critique; -1 when identical; len(steps)+1 when only the answer changed
    )
    copied_share: (
        float  # of the attempt's steps before the first error, the share copied verbatim (NaN: none)
    )
    dropped_steps: int  # of those steps, how many are not in the critique verbatim


def align(attempt: ParsedAttempt, critique_text: str, first_wrong_step: int, cut_off: bool) -> Alignment:
    critique = parse_attempt(critique_text)
    before = [normalise_step(s) for s in attempt.steps]
    after = [normalise_step(s) for s in critique.steps]
    # The steps the critic judged correct: all before its first error; a half-written last step of a cut-off
    # attempt is not owed a verbatim copy.
    judged = len(before) if not 1 <= first_wrong_step <= len(before) else first_wrong_step - 1
    if cut_off and judged == len(before):
        judged = max(judged - 1, 0)
    matcher = difflib.SequenceMatcher(None, before, after, autojunk=False)
    copied = sum(
        1
        for block in matcher.get_matching_blocks()
        for j in range(block.a, block.a + block.size)
        if j < judged
    )
    first_change = next((i1 + 1 for tag, _, _, i1, _ in matcher.get_opcodes() if tag != "equal"), None)
    if first_change is None:
        same_answer = normalise_step(attempt.answer or "") == normalise_step(critique.answer or "")
        first_change = -1 if same_answer else len(after) + 1
    return Alignment(
        first_changed_step=first_change,
        copied_share=copied / judged if judged else math.nan,
        dropped_steps=judged - copied,
    )


def final_status(critic_status: str, answer_correct: bool, dropped_steps: int) -> CritiqueStatus:
    """A critique the critic returned as ok is demoted when its answer
    is wrong, then when it dropped steps."""
    if critic_status != CritiqueStatus.OK:
        return CritiqueStatus(critic_status)
    if not answer_correct:
        return CritiqueStatus.WRONG_ANSWER
    if dropped_steps:
        return CritiqueStatus.DROPPED_STEPS
    return CritiqueStatus.OK


def verdict_is_correct(case: str) -> bool | None:
    """The critic's verdict on the attempt's answer: A (reproduce) and B (insert a step) say it is right."""
    return _VERDICTS.get(case)
