"""Teacher-context assembly: for each rollout, the feedback the self-teacher sees under one condition, and the
student and teacher prompts rendered from the versioned template. Never truncates anything."""

from __future__ import annotations

import pandas as pd

from sdfb.names import NO_VERDICT, Condition, CritiqueStatus
from sdfb.prompts import Template, parse_attempt, render_context, render_teacher_prompt


def critique_context(
    template: Template,
    style: str,
    critique: str,
    first_changed_step: int,
    first_wrong_step: int,
    attempt: str,
) -> str:
    """The teacher's context for one critique style, all derived from the same parsed critique.

    step_aligned: the whole critique. aligned_no_repeat: only its steps from the first one that differs
    from the attempt, then the answer. aligned_with_error: the attempt's wrong step quoted verbatim, then
    the whole critique (the same as step_aligned when the critic found no wrong step).
    """
    if style == Condition.ALIGNED_NO_REPEAT:
        parsed = parse_attempt(critique)
        tail = list(parsed.step_lines[first_changed_step - 1 :]) if first_changed_step > 0 else []
        return render_context(template, style, critique="\n".join([*tail, parsed.answer_line or ""]).strip())
    if style == Condition.ALIGNED_WITH_ERROR:
        steps = parse_attempt(attempt).step_lines
        if 1 <= first_wrong_step <= len(steps):
            return render_context(template, style, wrong_step=steps[first_wrong_step - 1], critique=critique)
    return render_context(template, Condition.STEP_ALIGNED, critique=critique)


def assemble_contexts(
    problems: pd.DataFrame,
    rollouts: pd.DataFrame,
    grades: pd.DataFrame,
    critiques: pd.DataFrame,
    condition: str,
    template: Template,
    tokenizer,
    critique_statuses: tuple[str, ...] = (CritiqueStatus.OK,),
) -> pd.DataFrame:
    """One row per rollout: the condition's context, the student prompt (as sampled) and the teacher prompt.

    Under the critique conditions only rows whose critique status is in `critique_statuses` are trained on.
    """
    keys = ["problem_id", "sample_index"]
    table = (
        rollouts[[*keys, "prompt_text", "completion_text"]]
        .merge(grades[[*keys, "extracted_answer", "correct"]], on=keys, how="left", validate="one_to_one")
        .merge(
            critiques[[*keys, "critique", "status", "first_changed_step", "first_wrong_step"]],
            on=keys,
            how="left",
            validate="one_to_one",
        )
        .merge(
            problems[["problem_id", "question", "solution"]],
            on="problem_id",
            how="left",
            validate="many_to_one",
        )
    )
    unmatched = table["correct"].isna() | table["status"].isna() | table["question"].isna()
    if unmatched.any():
        raise ValueError(
            "rollouts without a grade, critique or problem: "
            f"{table.loc[unmatched, keys].head().to_dict('records')}; assemble "
            "contexts from the tables of one round"
        )
    chosen = [
        row_context(row, condition, template, critique_statuses) for row in table.itertuples(index=False)
    ]
    contexts = [context for context, _ in chosen]
    teacher_prompts = [
        student if condition == Condition.NONE else render_teacher_prompt(tokenizer, template, q, c)
        for q, c, student in zip(table["question"], contexts, table["prompt_text"], strict=True)
    ]
    train = [usable for _, usable in chosen]
    return pd.DataFrame(
        {
            "problem_id": table["problem_id"],
            "sample_index": table["sample_index"],
            "condition": condition,
            "template": template.version,
            "context": contexts,
            "student_prompt": table["prompt_text"],
            "teacher_prompt": teacher_prompts,
            "train": train,
            "first_wrong_step": _known_verdicts(table),
        }
    )


def _known_verdicts(table: pd.DataFrame) -> pd.Series:
    """The critic's first wrong step where it gave a verdict (-1: none wrong), null where it did not
    answer; kept for every condition, so the localisation of the signal can be measured in every arm."""
    answered = ~table["status"].isin(NO_VERDICT)
    return table["first_wrong_step"].where(answered).astype("Int32")


def row_context(
    row, condition: str, template: Template, critique_statuses: tuple[str, ...]
) -> tuple[str, bool]:
    """The context for one merged rollout row under `condition`, and whether the row is trained on."""
    if condition == Condition.NONE:
        return "", True  # the control: the teacher sees exactly the student's prompt, so every advantage is 0
    if condition == Condition.BINARY:
        verdict = "correct" if row.correct else "incorrect"
        return render_context(
            template, Condition.BINARY, attempt_answer=row.extracted_answer or "nothing", verdict=verdict
        ), True
    if condition == Condition.REFERENCE:
        return render_context(template, Condition.REFERENCE, solution=row.solution), True
    if row.status not in critique_statuses or not row.critique:
        return "", False
    return critique_context(
        template,
        condition,
        row.critique,
        int(row.first_changed_step),
        int(row.first_wrong_step),
        row.completion_text,
    ), True
