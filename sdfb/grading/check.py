"""The second answer check: numbers, expressions and linear equations compared numerically with sympy.

It parses with latex2sympy directly (not math-verify's extraction) and never sees
math-verify's verdict; it abstains (None) on what it does not handle: sets, intervals,
tuples, matrices, inequalities, nonlinear equations.
"""

from __future__ import annotations

# Exact inputs are evaluated to 50 digits; values that agree to 30 are equal.
_DIGITS = 50
_RTOL_EXACT = 1e-30
# With a decimal written on either side: equal within 2e-6 relative, or within math-verify's six decimal
# places as long as that hides less than 0.1% (1e-7 and 4e-7 round alike, but they are not the same answer).
_RTOL = 2e-6
_ATOL_ROUNDED = 1e-6
_RTOL_ROUNDED = 1e-3
# Expressions with unknowns are compared at four fixed points, up to 12 unknowns: positive, so square roots
# and logarithms are defined, and spread by the golden ratio over [0.3, 2.7), so no two unknowns share a
# value.
_POINTS = [[0.3 + (k * 12 + j + 1) * 0.6180339887498949 % 2.4 for j in range(12)] for k in range(4)]


def independent_check(gold: str, predicted: str) -> bool | None:
    """Whether two checker forms (`sdfb.grading.normalise.checker_form`)
    are the same answer; None: no opinion.

    An equation against a value is read as math-verify reads it: `x = 5` (or `x + y = 3`) answers with its
    right side, a gold `x = 5` asks for 5 (a gold `x + y = 3` against a value: no opinion). Two equations
    are compared side by side: their differences of sides must be proportional (`x + y = 3` is `2x + 2y =
    6`, not `x - y = 3`); only linear equations are judged.
    """
    gold_expr = _parse(gold)
    pred_expr = _parse(predicted)
    if gold_expr is None or pred_expr is None:
        return None
    try:
        return _same(gold_expr, pred_expr)
    except Exception:  # sympy raises many types on objects it cannot combine (a Symbol minus an Interval)
        return None


def _parse(form: str):
    from latex2sympy2_extended import latex2sympy

    try:
        return latex2sympy(form)
    except Exception:  # the grammar raises bare Exception on syntax it does not know: no opinion then
        return None


def _same(gold, pred) -> bool | None:
    from sympy import Eq, Expr, Symbol

    if any(isinstance(e, Eq) and not all(isinstance(side, Expr) for side in e.args) for e in (gold, pred)):
        return None  # x = [1, 2] and the like
    if isinstance(gold, Eq) and isinstance(pred, Eq):
        return _same_equation(gold, pred)
    if isinstance(pred, Eq):
        pred = pred.rhs
    elif isinstance(gold, Eq):
        if not isinstance(gold.lhs, Symbol):
            return None  # a gold equation that is no assignment, against a value: no opinion
        gold = gold.rhs
    if not (isinstance(gold, Expr) and isinstance(pred, Expr)):
        return None
    return _same_value(gold, pred)


def _same_value(gold, pred) -> bool | None:
    symbols = sorted(gold.free_symbols | pred.free_symbols, key=str)
    rounded = _has_decimal(gold, pred)
    if not symbols:
        return _close(gold, pred, rounded, {})
    verdicts = [_close(gold, pred, rounded, dict(zip(symbols, point, strict=False))) for point in _POINTS]
    verdicts = [v for v in verdicts if v is not None]
    return all(verdicts) if verdicts else None


def _same_equation(gold, pred) -> bool | None:
    """Linear equations are equivalent exactly when their coefficient vectors are proportional."""
    gold_side = gold.lhs - gold.rhs
    pred_side = pred.lhs - pred.rhs
    symbols = sorted(gold_side.free_symbols | pred_side.free_symbols, key=str)
    if not symbols or len(symbols) > len(_POINTS[0]):
        return None
    gold_coefficients, pred_coefficients = (
        _coefficients(gold_side, symbols),
        _coefficients(pred_side, symbols),
    )
    if gold_coefficients is None or pred_coefficients is None:
        return None
    lead = next((i for i, c in enumerate(gold_coefficients) if not c.is_zero), None)
    if lead is None:
        return None  # 0 = 0: nothing to compare
    if pred_coefficients[lead].is_zero:
        return False
    ratio = pred_coefficients[lead] / gold_coefficients[lead]
    rounded = _has_decimal(gold_side, pred_side)
    return all(
        _close(g * ratio, p, rounded, {}) for g, p in zip(gold_coefficients, pred_coefficients, strict=True)
    )


def _coefficients(side, symbols):
    """[a_1, ..., a_n, c] of a linear `side` = sum(a_i * x_i) + c, as
    numbers; None when `side` is not linear."""
    coefficients = [side.diff(s) for s in symbols]
    if any(c.free_symbols for c in coefficients):
        return None
    values = [c.evalf(_DIGITS) for c in [*coefficients, side.subs(dict.fromkeys(symbols, 0))]]
    return values if all(_finite(v) for v in values) else None


def _has_decimal(*exprs) -> bool:
    from sympy import Float

    return any(e.has(Float) for e in exprs)


def _close(gold, pred, rounded: bool, point: dict) -> bool | None:
    """Numeric comparison at `point`; None when either side is not a finite number there."""
    from sympy import Abs, nan

    a = gold.evalf(_DIGITS, subs=point)
    b = pred.evalf(_DIGITS, subs=point)
    if not (_finite(a) and _finite(b)):
        comparable = a.is_number and b.is_number and not (a.has(nan) or b.has(nan))
        return bool(a == b) if comparable else None  # oo is oo; nan is no number
    difference = Abs(a - b).evalf(_DIGITS)
    scale = max(Abs(a).evalf(_DIGITS), Abs(b).evalf(_DIGITS))
    if not rounded:
        return bool(difference <= _RTOL_EXACT * scale)
    return bool(
        difference <= _RTOL * scale or (difference <= _ATOL_ROUNDED and difference <= _RTOL_ROUNDED * scale)
    )


def _finite(value) -> bool:
    return bool(value.is_number) and value.is_finite is True
