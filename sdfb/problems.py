"""Problem sampling: a seeded generator of multi-step arithmetic word problems, and the eval
split and each round's batch from files or datasets (pools in `sdfb.pools`). Train and eval
never share a question (checked by text hash)."""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass

import pandas as pd

from sdfb.config import ArithmeticConfig, DataConfig
from sdfb.datafiles import DataError
from sdfb.pools import (
    Pool,
    draw,
    first_usable,
    hash_order,
    none_usable,
    open_pool,
    problem_id,
    reasons,
    report_dropped,
)

log = logging.getLogger(__name__)

_NAMES = [
    ("Tom", "he"),
    ("Anna", "she"),
    ("Ben", "he"),
    ("Lucy", "she"),
    ("Sam", "he"),
    ("Mia", "she"),
    ("Leo", "he"),
    ("Emma", "she"),
    ("Max", "he"),
    ("Zoe", "she"),
]
_ITEMS = [
    "apples",
    "marbles",
    "stickers",
    "books",
    "coins",
    "pencils",
    "cookies",
    "cards",
    "shells",
    "stamps",
]


@dataclass(frozen=True)
class Step:
    left: int
    op: str
    right: int

    @property
    def value(self) -> int:
        return {"+": self.left + self.right, "-": self.left - self.right, "*": self.left * self.right}[
            self.op
        ]

    def equation(self) -> str:
        return f"{self.left} {self.op} {self.right} = {self.value}"


def _phrase(op: str, amount: int, pron: str, item: str, rng: random.Random) -> tuple[str, str]:
    """The sentence that applies one step, and the clause the reference solution uses for it."""
    if amount == 1:
        item = item.removesuffix("s")  # every item name is a plain -s plural
    subject = pron.capitalize()
    verb_have = "has"
    if op == "+":
        options = [
            (f"{subject} buys {amount} more {item}.", f"after buying {amount} more"),
            (f"{subject} finds {amount} more {item}.", f"after finding {amount} more"),
            (
                f"A friend gives {'him' if pron == 'he' else 'her'} {amount} {item}.",
                f"after getting {amount}",
            ),
        ]
    elif op == "-":
        options = [
            (f"{subject} gives {amount} {item} to a friend.", f"after giving away {amount}"),
            (f"{subject} loses {amount} {item}.", f"after losing {amount}"),
            (f"{subject} uses {amount} of the {item}.", f"after using {amount}"),
        ]
    else:
        options = [
            (
                f"Then the number of {item} {pron} {verb_have} becomes {amount} times as large.",
                f"after it becomes {amount} times as large",
            ),
        ]
    return rng.choice(options)


def generate_problem(rng: random.Random, cfg: ArithmeticConfig) -> dict:
    """One word problem whose solution is an exact chain of step equations."""
    name, pron = rng.choice(_NAMES)
    item = rng.choice(_ITEMS)
    n_steps = rng.randint(cfg.min_steps, cfg.max_steps)
    total = rng.randint(2, cfg.max_value)
    sentences = [f"{name} has {total} {item}."]
    clauses = [f"{name} starts with {total} {item}."]
    steps: list[Step] = []
    for _ in range(n_steps):
        ops = [
            op
            for op in cfg.operations
            if not (op == "-" and total < 2) and not (op == "*" and total * 2 > cfg.max_value * 4)
        ]
        op = rng.choice(ops or ["+"])
        if op == "+":
            amount = rng.randint(1, cfg.max_value)
        elif op == "-":
            amount = rng.randint(1, total - 1)
        else:
            amount = rng.randint(2, 3)
        step = Step(total, op, amount)
        sentence, clause = _phrase(op, amount, pron, item, rng)
        sentences.append(sentence)
        clauses.append(f"{clause.capitalize()}, {pron} has {step.equation()}.")
        steps.append(step)
        total = step.value
    question = " ".join(sentences) + f" How many {item} does {name} have now?"
    solution = " ".join(clauses) + f" The answer is {total}."
    return {
        "problem_id": problem_id(question),
        "question": question,
        "solution": solution,
        "answer": str(total),
        "steps": [s.equation() for s in steps],
        "source": "arithmetic",
    }


def generate_problems(
    n: int, seed: int, cfg: ArithmeticConfig, exclude: set[str] = frozenset()
) -> pd.DataFrame:
    """`n` distinct problems from `seed`, none of whose ids is in `exclude`."""
    rng = random.Random(seed)
    rows: dict[str, dict] = {}
    attempts = 0
    while len(rows) < n:
        attempts += 1
        if attempts > 50 * n + 1000:
            raise DataError(
                f"could only generate {len(rows)} of {n} distinct problems; raise "
                "data.arithmetic.max_value or max_steps"
            )
        row = generate_problem(rng, cfg)
        if row["problem_id"] not in exclude:
            rows.setdefault(row["problem_id"], row)
    return pd.DataFrame(list(rows.values()))


def load_pools(cfg: DataConfig, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Every usable problem, golds parsed: the train pool (in an order fixed by `seed`) and the eval split
    (fixed by `cfg.seed`); overlapping questions are removed from train. Reads and parses the whole source:
    the stages draw through `sample_eval` and `sample_round`, which parse only what they draw."""
    pool = open_pool(cfg, cfg.path, cfg.hf_split)
    train, dropped = _all_usable(pool, cfg)
    if _separate_eval(cfg):
        eval_pool = open_pool(cfg, cfg.eval_path or cfg.path, cfg.hf_eval_split or cfg.hf_split)
        evals, eval_dropped = _all_usable(eval_pool, cfg)
        dropped.update({f"eval_{k}": v for k, v in eval_dropped.items()})
        evals = hash_order(evals, cfg.seed).head(cfg.eval_problems)
    else:
        ordered = hash_order(train, cfg.seed)
        if len(ordered) <= cfg.eval_problems:
            raise _too_few(cfg, len(ordered), dropped)
        evals = ordered.head(cfg.eval_problems)
        train = ordered.iloc[cfg.eval_problems :]
    overlap = train["problem_id"].isin(set(evals["problem_id"]))
    dropped["train_overlapping_eval"] = int(overlap.sum())
    train = train[~overlap]
    return hash_order(train, seed), evals.reset_index(drop=True), dropped


def _all_usable(pool: Pool, cfg: DataConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    usable, drawn = draw(pool, pool.candidates, cfg)
    dropped = pool.dropped | drawn
    report_dropped(pool.origin, dropped)
    if usable.empty:
        raise none_usable(pool, dropped)
    return usable, dropped


def _separate_eval(cfg: DataConfig) -> bool:
    return bool(cfg.eval_path or cfg.hf_eval_split)


def _too_few(cfg: DataConfig, usable: int, dropped: dict[str, int]) -> DataError:
    return DataError(
        f"{cfg.path} has {usable} usable problems ({reasons(dropped)}), not more than "
        f"data.eval_problems={cfg.eval_problems}; lower data.eval_problems or give data.eval_path"
    )


def sample_eval(cfg: DataConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """The held-out eval problems, drawn from `cfg.seed` alone: the same for every run seed of an
    experiment. Only the golds of the problems drawn (and of unusable rows met before them) are parsed."""
    if cfg.source == "arithmetic":
        frame = generate_problems(cfg.eval_problems, seed=_split_seed(cfg.seed, "eval"), cfg=cfg.arithmetic)
        return frame.assign(split="eval"), {}
    separate = _separate_eval(cfg)
    if separate:
        pool = open_pool(cfg, cfg.eval_path or cfg.path, cfg.hf_eval_split or cfg.hf_split)
    else:
        pool = open_pool(cfg, cfg.path, cfg.hf_split)
    ordered = hash_order(pool.candidates, cfg.seed)
    evals, drawn, read = first_usable(pool, ordered, cfg.eval_problems, cfg)
    dropped = pool.dropped | drawn
    report_dropped(pool.origin, dropped)
    if evals.empty:
        raise none_usable(pool, dropped)
    if not separate and read >= len(ordered):
        raise _too_few(cfg, len(evals), dropped)
    prefix = "eval_" if separate else ""
    return evals.assign(split="eval"), {f"{prefix}{k}": v for k, v in dropped.items()}


def sample_round(
    cfg: DataConfig, seed: int, round_index: int, eval_ids: set[str]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """A fresh batch of training problems for round `round_index` (1-based), disjoint from the eval
    split, drawn from `seed` (see `sdfb.seeds.problem_seed`). From a file or dataset: the round's
    window of the candidates in the seed's order, less the rows whose gold answer cannot be read
    (only this window's golds are parsed)."""
    n = cfg.problems_per_round
    if cfg.source == "arithmetic":
        frame = generate_problems(
            n, seed=_split_seed(seed, f"round{round_index}"), cfg=cfg.arithmetic, exclude=eval_ids
        )
        return frame.assign(split="train"), {}
    pool = open_pool(cfg, cfg.path, cfg.hf_split)
    overlap = pool.candidates["problem_id"].isin(eval_ids)
    train = hash_order(pool.candidates[~overlap], seed)
    if train.empty:
        raise DataError(f"{cfg.path} has no training problems left after removing the eval split")
    window = round_window(train, n, round_index)
    picked, drawn = draw(pool, window, cfg)
    report_dropped(pool.origin, pool.dropped | drawn)
    dropped = pool.dropped | drawn | {"train_overlapping_eval": int(overlap.sum())}
    if picked.empty:
        raise DataError(
            f"{cfg.path}: none of the {len(window)} problems drawn for round {round_index} is usable "
            f"({reasons(drawn)}); check data.columns (or data.preset) and data.answer_extract"
        )
    return picked.assign(split="train"), dropped


def round_window(ordered: pd.DataFrame, n: int, round_index: int) -> pd.DataFrame:
    """Round `round_index`'s `n` rows of `ordered`, consecutive windows
    that wrap around when the rows run out."""
    start = ((round_index - 1) * n) % len(ordered)
    return pd.concat([ordered, ordered]).iloc[start : start + min(n, len(ordered))]


def sample_candidates(cfg: DataConfig, n: int, eval_ids: set[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """The difficulty filter's `n` candidate training problems, disjoint from the
    eval split, in `cfg.seed`'s order (the same for every run seed): generated, or
    the first usable rows of the training pool."""
    if cfg.source == "arithmetic":
        frame = generate_problems(
            n, seed=_split_seed(cfg.seed, "filter"), cfg=cfg.arithmetic, exclude=eval_ids
        )
        return frame.assign(split="train"), {}
    pool = open_pool(cfg, cfg.path, cfg.hf_split)
    overlap = pool.candidates["problem_id"].isin(eval_ids)
    ordered = hash_order(pool.candidates[~overlap], cfg.seed)
    picked, drawn, _ = first_usable(pool, ordered, n, cfg)
    dropped = pool.dropped | drawn
    report_dropped(pool.origin, dropped)
    if picked.empty:
        raise none_usable(pool, dropped)
    return picked.assign(split="train"), dropped | {"train_overlapping_eval": int(overlap.sum())}


def sample_round_from(kept: pd.DataFrame, n: int, seed: int, round_index: int) -> pd.DataFrame:
    """Round `round_index`'s batch from the problems the difficulty filter kept, in `seed`'s order."""
    return round_window(hash_order(kept, seed), n, round_index).reset_index(drop=True)


def check_disjoint(train: pd.DataFrame, eval_ids: set[str]) -> pd.DataFrame:
    """`train` itself, after checking that none of its problems is in the eval split."""
    overlap = set(train["problem_id"]) & eval_ids
    if overlap:
        raise DataError(
            f"{len(overlap)} training problems are also eval problems, e.g. {sorted(overlap)[:3]}"
        )
    return train


def _split_seed(seed: int, label: str) -> int:
    return int(hashlib.sha256(f"{seed}:{label}".encode()).hexdigest()[:8], 16)
