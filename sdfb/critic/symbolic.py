"""The exact symbolic critic for arithmetic problems (paper cases A-D): it checks every step
equation of an attempt against the problem's step chain. It needs no model and makes no calls; it
cannot judge problems without a chain."""

from __future__ import annotations

from sdfb.critic.base import Critique, CritiqueRequest, answer_number, renumber
from sdfb.names import CriticCase, CritiqueStatus
from sdfb.prompts import parse_attempt, parse_equation


class SymbolicCritic:
    """Checks every step equation of an attempt against the problem's exact step chain (paper cases A-D).

    A step is correct when its equation holds and yields the value of the next reference step, or of a
    later one (the steps in between are missing and get inserted). Correct steps are copied verbatim
    (only their label is renumbered after an insertion); the first wrong step and everything after it
    come from the reference chain. `first_wrong_step` is 1-based; len(steps) + 1 means every step was
    right and the final answer was wrong.
    """

    name = "symbolic"

    def critique(self, requests: list[CritiqueRequest]) -> list[Critique]:
        return [self.critique_one(r) for r in requests]

    def stats(self) -> dict:
        return {"calls": 0, "cache_hits": 0}

    def critique_one(self, req: CritiqueRequest) -> Critique:
        reference = [parse_equation(s) for s in req.steps]
        if not reference or any(eq is None for eq in reference):
            return Critique(
                CriticCase.NONE,
                -1,
                "",
                CritiqueStatus.UNAVAILABLE,
                error="no exact step chain for this problem",
            )
        attempt = parse_attempt(req.attempt)
        cut_off = req.finish_reason == "length" and attempt.answer is None
        lines: list[str] = []
        next_ref = 0
        first_wrong = None
        inserted = False
        for k, (text, line) in enumerate(zip(attempt.steps, attempt.step_lines, strict=True)):
            eq = parse_equation(text)
            match = None
            if eq is not None and eq.holds():
                match = next(
                    (m for m in range(next_ref, len(reference)) if eq.result == reference[m].result), None
                )
            if match is None:
                if not (cut_off and k == len(attempt.steps) - 1):  # a half-written last step is not an error
                    first_wrong = k + 1
                break
            for missing in range(next_ref, match):
                lines.append(f"Step {len(lines) + 1}: {req.steps[missing]}")
                inserted = True
            lines.append(renumber(line, len(lines) + 1) if inserted else line)
            next_ref = match + 1
        lines += [
            f"Step {len(lines) + 1 + i}: {req.steps[m]}"
            for i, m in enumerate(range(next_ref, len(reference)))
        ]
        final = reference[-1].result
        given = answer_number(attempt.answer)
        answer_ok = given is not None and abs(given - final) < 1e-9

        if answer_ok and first_wrong is None and not inserted and next_ref == len(reference):
            return Critique(CriticCase.REPRODUCE, -1, req.attempt.strip(), CritiqueStatus.OK)
        if answer_ok:
            case = CriticCase.INSERT_STEP
            wrong = first_wrong or -1
        elif first_wrong is None and attempt.answer is None:
            case = CriticCase.FINISH
            wrong = -1
        else:
            case = CriticCase.FIX_ERROR
            wrong = first_wrong or len(attempt.steps) + 1
        number = str(int(final)) if float(final).is_integer() else str(final)
        return Critique(case, wrong, "\n".join([*lines, f"Answer: {number}"]), CritiqueStatus.OK)
