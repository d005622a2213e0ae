"""Grading: extract each completion's final answer and compare it with the gold answer,
math-verify plus a second independent check, in a worker pool with time and memory
limits. Statuses are recorded, never raised."""

from sdfb.grading.extract import extract_answer
from sdfb.grading.grade import Grade, gold_statuses, grade_completions, grade_pairs
from sdfb.grading.normalise import MAX_ANSWER_CHARS
from sdfb.grading.structure import checker_form

__all__ = [
    "MAX_ANSWER_CHARS",
    "Grade",
    "checker_form",
    "extract_answer",
    "gold_statuses",
    "grade_completions",
    "grade_pairs",
]
