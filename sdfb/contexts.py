"""Teacher-context assembly: for each rollout, the feedback the self-teacher sees under one condition, and the
student and teacher prompts rendered from the versioned template. Never truncates anything."""

from __future__ import annotations

import pandas as pd

from sdfb.prompts import Template, render_context, render_teacher_prompt


def assemble_contexts(
    problems: pd.DataFrame,
    rollouts: pd.DataFrame,
    grades: pd.DataFrame,
    critiques: pd.DataFrame,
    condition: str,
    template: Template,
    tokenizer,
) -> pd.DataFrame:
    """One row per rollout: the condition's context, the student prompt (as sampled) and the teacher prompt."""
    keys = ["problem_id", "sample_index"]
    table = (
        rollouts[[*keys, "prompt_text"]]
        .merge(grades[[*keys, "extracted_answer", "correct"]], on=keys, how="left", validate="one_to_one")
        .merge(critiques[[*keys, "critique", "status"]], on=keys, how="left", validate="one_to_one")
        .merge(
            problems[["problem_id", "question", "solution"]],
            on="problem_id",
            how="left",
            validate="many_to_one",
        )
    )
    unmatched = table["correct"].isna() | table["status"].isna() | table["question"].isna()
    assert not unmatched.any(), (
        f"rollouts without a grade, critique or problem: {table.loc[unmatched, keys].head().to_dict('records')}"
    )
    contexts, teacher_prompts, train = [], [], []
    for row in table.itertuples(index=False):
        if condition == "none":
            context, usable = "", False  # the teacher equals the student: nothing to learn
        elif condition == "binary":
            context = render_context(
                template,
                "binary",
                attempt_answer=row.extracted_answer or "nothing",
                verdict="correct" if row.correct else "incorrect",
            )
            usable = True
        elif condition == "reference":
            context, usable = render_context(template, "reference", solution=row.solution), True
        else:
            usable = row.status == "ok"
            context = render_context(template, "step_aligned", critique=row.critique) if usable else ""
        contexts.append(context)
        teacher_prompts.append(render_teacher_prompt(tokenizer, template, row.question, context))
        train.append(usable)
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
        }
    )
