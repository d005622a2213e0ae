"""Declared pyarrow schemas, one per stage table, with the schema version written into every manifest.

Bump SCHEMA_VERSION when a column changes meaning; finished stages written under another version rerun.
"""

import pyarrow as pa

SCHEMA_VERSION = 4

PROBLEMS = pa.schema(
    [
        ("problem_id", pa.string()),  # sha256 of the normalised question text (first 16 hex digits)
        ("question", pa.string()),
        ("solution", pa.string()),  # prose reference solution
        ("answer", pa.string()),
        ("steps", pa.list_(pa.string())),  # exact step equations, e.g. "12 + 5 = 17"; empty for loaded data
        ("source", pa.string()),
        ("split", pa.string()),  # train | eval
    ]
)

# The difficulty filter's candidates: PROBLEMS plus how often the base model solved each, and whether it is
# kept.
FILTERED = pa.schema(
    [
        *PROBLEMS,
        ("n_samples", pa.int32()),
        ("n_correct", pa.int32()),
        ("kept", pa.bool_()),
    ]
)

ROLLOUTS = pa.schema(
    [
        ("problem_id", pa.string()),
        ("sample_index", pa.int32()),
        ("prompt_text", pa.string()),
        ("prompt_ids", pa.list_(pa.int32())),
        ("completion_ids", pa.list_(pa.int32())),  # exactly the sampled ids; training reads these
        ("completion_text", pa.string()),
        ("logprobs", pa.list_(pa.float32())),  # log p(sampled token) under the policy's raw logits
        ("finish_reason", pa.string()),  # stop | length
        ("policy_version", pa.string()),  # base | round_0001 | ...
    ]
)

GRADES = pa.schema(
    [
        ("problem_id", pa.string()),
        ("sample_index", pa.int32()),
        ("extracted_answer", pa.string()),
        ("status", pa.string()),  # correct | wrong | no_answer | unparseable | timeout (time or memory limit)
        ("correct", pa.bool_()),
        ("checks_disagree", pa.bool_()),  # math-verify and the second check differ (then: wrong)
        ("format_ok", pa.bool_()),  # at least one step line and an answer line
        ("n_steps", pa.int32()),
    ]
)

CRITIQUES = pa.schema(
    [
        ("problem_id", pa.string()),
        ("sample_index", pa.int32()),
        ("critic", pa.string()),  # symbolic | vllm:<model> | openai:<model>
        ("case", pa.string()),  # A reproduce | B insert missing step | C finish | D fix first error | none
        ("first_wrong_step", pa.int32()),  # the critic's verdict, 1-based; -1 when no step is wrong
        # Alignment checks (sdfb.critic.alignment): where the critique first departs from the attempt
        # (1-based; -1 identical; n+1 only the answer), the share of the attempt's steps before the first
        # error copied verbatim (NaN when there are none), and how many of those are missing or reworded.
        ("first_changed_step", pa.int32()),
        ("copied_share", pa.float32()),
        ("dropped_steps", pa.int32()),
        ("critique", pa.string()),  # in the solver's step format; empty unless the critic answered in format
        ("critique_answer", pa.string()),
        ("answer_correct", pa.bool_()),  # the critique's answer, graded like rollouts
        (
            "verdict_agrees",
            pa.bool_(),
        ),  # the critic's verdict (A/B right, C/D wrong) equals the grader's; null: none
        # ok | wrong_answer | dropped_steps | malformed | failed | no_steps | unavailable
        ("status", pa.string()),
        ("error", pa.string()),  # why the status is not ok
        ("raw", pa.string()),  # the critic's reply as received (LLM critics)
        ("from_cache", pa.bool_()),
    ]
)

CONTEXTS = pa.schema(
    [
        ("problem_id", pa.string()),
        ("sample_index", pa.int32()),
        ("condition", pa.string()),
        ("template", pa.string()),
        ("context", pa.string()),
        ("student_prompt", pa.string()),
        ("teacher_prompt", pa.string()),
        ("train", pa.bool_()),  # False when the condition has nothing to teach on this sample
        ("first_wrong_step", pa.int32()),  # the critic's verdict (1-based; -1 none wrong); null: no verdict
    ]
)

DISTILL = pa.schema(
    [
        ("problem_id", pa.string()),
        ("sample_index", pa.int32()),
        ("n_tokens", pa.int32()),
        ("mean_advantage", pa.float32()),  # mean over tokens of log p_teacher - log p_student
        ("min_advantage", pa.float32()),
        ("frac_negative", pa.float32()),
        ("kl", pa.float32()),  # mean per-token full-vocabulary KL(student || teacher)
    ]
)

TEACHER = pa.schema(
    [
        ("problem_id", pa.string()),
        ("sample_index", pa.int32()),
        # log p_teacher of each sampled completion token under the teacher prompt, scored by the engine; empty
        # table when the teacher runs inside training (distill.teacher_source: trainer) or the objective is
        # GRPO
        ("teacher_logprobs", pa.list_(pa.float32())),
    ]
)

TOKENS = pa.schema(
    [
        ("problem_id", pa.string()),
        ("sample_index", pa.int32()),
        ("position", pa.int32()),  # index into the completion
        ("token_id", pa.int32()),
        ("student_logprob", pa.float32()),  # before this round's first update on the sample
        ("teacher_logprob", pa.float32()),  # NaN under GRPO (no teacher)
        ("advantage", pa.float32()),  # A_t = teacher - student; under GRPO the sequence's group advantage
        ("step_index", pa.int32()),  # the "Step k" line the token lies in; -1 the answer line, 0 elsewhere
        (
            "segment",
            pa.string(),
        ),  # prefix | wrong_step | after | answer | other | unknown (sdfb.localisation)
    ]
)

EVAL_SAMPLES = pa.schema(
    [
        ("checkpoint", pa.string()),
        ("problem_id", pa.string()),
        ("sample_index", pa.int32()),
        ("completion_text", pa.string()),
        ("n_tokens", pa.int32()),
        ("finish_reason", pa.string()),
        ("extracted_answer", pa.string()),
        ("status", pa.string()),
        ("correct", pa.bool_()),
        ("checks_disagree", pa.bool_()),  # as in GRADES
        ("format_ok", pa.bool_()),
    ]
)

SCORES = pa.schema(
    [
        ("checkpoint", pa.string()),
        ("k", pa.int32()),
        ("n_problems", pa.int32()),
        ("avg_at_k", pa.float64()),
        ("pass_at_k", pa.float64()),
        ("maj_at_k", pa.float64()),
        ("format_rate", pa.float64()),
    ]
)
