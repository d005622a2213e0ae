"""The closed sets of names that configs, stages and tables share: feedback conditions, critic
cases, critique, grade and arm statuses. Each is a `StrEnum` defined once here; its values are the
strings YAML recipes and Parquet hold.

A member is a `str`, so it compares equal to its value, dumps to JSON
as it, and is stored in Parquet as it.
"""

from __future__ import annotations

from enum import StrEnum


class Condition(StrEnum):
    """What the self-teacher sees beside the question (docs/conditions.md)."""

    NONE = "none"  # the control: the teacher's prompt is the student's
    BINARY = "binary"  # whether the attempt's answer is right
    REFERENCE = "reference"  # the dataset's reference solution
    STEP_ALIGNED = "step_aligned"  # the critique: the attempt's correct steps, then the fix
    ALIGNED_NO_REPEAT = "aligned_no_repeat"  # the critique from its first changed step on
    ALIGNED_WITH_ERROR = "aligned_with_error"  # the wrong step quoted, then the critique


class CriticCase(StrEnum):
    """The critic's verdict on an attempt (the paper's cases A-D)."""

    REPRODUCE = "A"  # every step and the answer right: the attempt is reproduced
    INSERT_STEP = "B"  # the answer right, a step missing: it is inserted
    FINISH = "C"  # cut off before an answer, no step wrong: the attempt is finished
    FIX_ERROR = "D"  # a step or the answer wrong: the first error is fixed
    NONE = "none"  # no verdict (the critique's status is not ok)


class CritiqueStatus(StrEnum):
    """A critique's status: the critic's own (ok to unavailable), then
    the alignment checks' (`final_status`)."""

    OK = "ok"  # a parsed critique that passed the checks
    MALFORMED = (
        "malformed"  # the critic answered, not in the requested format (no steps, no answer, open <think>)
    )
    FAILED = "failed"  # no answer: endpoint down, errors after all retries, the deadline, a non-JSON reply
    NO_STEPS = "no_steps"  # the attempt has no step lines to align with (no call is made)
    UNAVAILABLE = "unavailable"  # the symbolic critic cannot judge this problem (no exact step chain)
    WRONG_ANSWER = "wrong_answer"  # the critique's final answer does not grade as correct
    DROPPED_STEPS = "dropped_steps"  # a step before the critic's first error is missing or was reworded


# The statuses under which the critic gave no verdict on the attempt (its first wrong step means nothing).
NO_VERDICT = frozenset(
    {CritiqueStatus.MALFORMED, CritiqueStatus.FAILED, CritiqueStatus.NO_STEPS, CritiqueStatus.UNAVAILABLE}
)


class GradeStatus(StrEnum):
    """How one answer graded against its gold answer; every comparison ends in one (docs/grading.md)."""

    CORRECT = "correct"
    WRONG = "wrong"
    NO_ANSWER = "no_answer"  # no answer marker in the text
    UNPARSEABLE = "unparseable"  # an answer no checker can read
    TIMEOUT = "timeout"  # the check ran past its time limit, or its worker's memory limit


class ArmStatus(StrEnum):
    """How an experiment arm ended: every seed's run finished, or one failed (its error kept beside it)."""

    OK = "ok"
    FAILED = "failed"


class GoldStatus(StrEnum):
    """Whether a dataset's gold answer can be graded against (problems whose gold cannot are dropped)."""

    OK = "ok"
    UNPARSEABLE = "unparseable"
    TIMEOUT = "timeout"
