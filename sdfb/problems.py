"""Problem sampling: a seeded generator of multi-step arithmetic word problems, and loaders for local files and
Hugging Face datasets with a column mapping. Train and eval never share a question (checked by text hash)."""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass

import pandas as pd

from sdfb.config import ArithmeticConfig, DataConfig, GradingConfig
from sdfb.datafiles import DataError, as_text, check_types, read_source

log = logging.getLogger(__name__)

_NAMES = [
    ("Tom", "he"), ("Anna", "she"), ("Ben", "he"), ("Lucy", "she"), ("Sam", "he"),
    ("Mia", "she"), ("Leo", "he"), ("Emma", "she"), ("Max", "he"), ("Zoe", "she"),
]  # fmt: skip
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


def problem_id(question: str) -> str:
    normalised = " ".join(question.lower().split())
    return hashlib.sha256(normalised.encode()).hexdigest()[:16]


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
            (f"Then the number of {item} {pron} {verb_have} becomes {amount} times as large.", f"after it becomes {amount} times as large"),
        ]  # fmt: skip
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
                f"could only generate {len(rows)} of {n} distinct problems; raise data.arithmetic.max_value or max_steps"
            )
        row = generate_problem(rng, cfg)
        if row["problem_id"] not in exclude:
            rows.setdefault(row["problem_id"], row)
    return pd.DataFrame(list(rows.values()))


# Gold answers are parsed as grading parses them, in its worker pool under its limits. The data config carries no
# grading settings, and the problem stages must not rerun when grading.* changes, so the defaults are used.
_GOLD_LIMITS = GradingConfig()


def _gold_statuses(answers: pd.Series) -> pd.Series:
    """'ok' | 'unparseable' | 'timeout' per gold answer (see `sdfb.grading.gold_statuses`)."""
    from sdfb.grading import gold_statuses

    limits = _GOLD_LIMITS
    statuses = gold_statuses(list(answers), limits.timeout_seconds, limits.workers, limits.memory_mb)
    return pd.Series(statuses, index=answers.index, dtype=object)


def normalise_loaded(
    frame: pd.DataFrame, cfg: DataConfig, origin: str
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Map columns to question/solution/answer, drop unusable rows and count why."""
    if frame.empty:
        raise DataError(f"{origin} has no rows; check data.path / data.eval_path")
    cols = cfg.columns
    wanted = {"question": cols.question, "solution": cols.solution, "answer": cols.answer}
    missing = [f"{k} -> {v!r}" for k, v in wanted.items() if v not in frame.columns]
    if missing:
        raise DataError(
            f"{origin} lacks the mapped column(s) {', '.join(missing)}; it has {list(frame.columns)}. "
            "Set data.columns.question/solution/answer to its column names."
        )
    check_types(frame, wanted, origin)
    out = pd.DataFrame({k: frame[v].map(as_text).astype("string").str.strip() for k, v in wanted.items()})
    dropped = {"empty_question": int((out["question"] == "").sum())}
    out = out[out["question"] != ""]
    too_long = out["question"].str.len() > cfg.max_question_chars
    dropped["question_too_long"] = int(too_long.sum())
    out = out[~too_long]
    dropped["missing_answer"] = int((out["answer"] == "").sum())
    out = out[out["answer"] != ""]
    gold = _gold_statuses(out["answer"])
    dropped["unparseable_answer"] = int((gold == "unparseable").sum())
    dropped["answer_parse_timeout"] = int((gold == "timeout").sum())
    out = out[gold == "ok"]
    out = out.assign(
        problem_id=out["question"].map(problem_id), steps=[[] for _ in range(len(out))], source=origin
    )
    before = len(out)
    out = out.drop_duplicates("problem_id")
    dropped["duplicate_question"] = before - len(out)
    for reason, count in dropped.items():
        if count:
            log.warning("%s: dropped %d rows (%s)", origin, count, reason)
    if out.empty:
        raise DataError(
            f"{origin}: none of its {len(frame)} rows is usable ({_reasons(dropped)}); check data.columns "
            "and that the answer column holds final answers"
        )
    return out.reset_index(drop=True), dropped


def _reasons(dropped: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in dropped.items() if count) or "none dropped"


def _hash_order(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    keys = frame["problem_id"].map(lambda pid: hashlib.sha256(f"{seed}:{pid}".encode()).hexdigest())
    return frame.assign(_key=keys).sort_values("_key").drop(columns="_key").reset_index(drop=True)


def load_pools(cfg: DataConfig, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """Train pool (in an order fixed by `seed`) and eval split (fixed by `cfg.seed` alone, so every run seed gets
    the same eval problems) from files or a dataset; overlapping questions are removed from train."""
    train, dropped = normalise_loaded(read_source(cfg.path, cfg.source, cfg, cfg.hf_split), cfg, cfg.path)
    if cfg.eval_path or cfg.hf_eval_split:
        eval_path = cfg.eval_path or cfg.path
        eval_split = cfg.hf_eval_split or cfg.hf_split
        evals, eval_dropped = normalise_loaded(
            read_source(eval_path, cfg.source, cfg, eval_split), cfg, eval_path
        )
        dropped.update({f"eval_{k}": v for k, v in eval_dropped.items()})
        evals = _hash_order(evals, cfg.seed).head(cfg.eval_problems)
    else:
        ordered = _hash_order(train, cfg.seed)
        if len(ordered) <= cfg.eval_problems:
            raise DataError(
                f"{cfg.path} has {len(ordered)} usable problems ({_reasons(dropped)}), not more than "
                f"data.eval_problems={cfg.eval_problems}; lower data.eval_problems or give data.eval_path"
            )
        evals, train = ordered.head(cfg.eval_problems), ordered.iloc[cfg.eval_problems :]
    overlap = train["problem_id"].isin(set(evals["problem_id"]))
    dropped["train_overlapping_eval"] = int(overlap.sum())
    train = train[~overlap]
    return _hash_order(train, seed), evals.reset_index(drop=True), dropped


def sample_eval(cfg: DataConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """The held-out eval problems, drawn from `cfg.seed` alone: the same for every run seed of an experiment."""
    if cfg.source == "arithmetic":
        frame = generate_problems(cfg.eval_problems, seed=_split_seed(cfg.seed, "eval"), cfg=cfg.arithmetic)
        return frame.assign(split="eval"), {}
    _, evals, dropped = load_pools(cfg, cfg.seed)
    return evals.assign(split="eval"), dropped


def sample_round(
    cfg: DataConfig, seed: int, round_index: int, eval_ids: set[str]
) -> tuple[pd.DataFrame, dict[str, int]]:
    """A fresh batch of training problems for round `round_index` (1-based), disjoint from the eval split, drawn
    from `seed` (see `sdfb.seeds.problem_seed`)."""
    n = cfg.problems_per_round
    if cfg.source == "arithmetic":
        frame = generate_problems(
            n, seed=_split_seed(seed, f"round{round_index}"), cfg=cfg.arithmetic, exclude=eval_ids
        )
        return frame.assign(split="train"), {}
    train, _, dropped = load_pools(cfg, seed)
    train = train[~train["problem_id"].isin(eval_ids)]
    if train.empty:
        raise DataError(f"{cfg.path} has no training problems left after removing the eval split")
    start = ((round_index - 1) * n) % len(train)
    picked = pd.concat([train, train]).iloc[start : start + min(n, len(train))]
    return picked.assign(split="train").reset_index(drop=True), dropped


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
