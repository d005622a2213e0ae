"""What a run's seed varies, decided in one place: the seed of each stage that draws random numbers,
derived from the run seed and the stage's own settings. Problems are drawn from `data.seed`, not from here,
so the eval problems (and by default the training problems) are the same for every seed of an experiment.

A round's rollouts (`sdfb.rollouts.round_rollouts`) and its training (`sdfb.distill.run_round`) take the
run seed and the round and derive their own seeds here, so neither caller decides a seed."""

from __future__ import annotations

import hashlib


def derive(*parts: object) -> int:
    """A 31-bit seed from `parts`: different parts give unrelated seeds (an additive scheme such as
    seed + 1000 * round would give seed 1000 round 0 the samples of seed 0 round 1)."""
    text = ":".join(str(p) for p in parts)
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def rollout_seed(run_seed: int, sampling_seed: int, round_index: int) -> int:
    """The student's sampling seed for a round's rollouts: varies with the run seed and the round."""
    return derive("rollouts", run_seed, sampling_seed, round_index)


def eval_seed(run_seed: int, sampling_seed: int) -> int:
    """The eval sampling seed: varies with the run seed, and is the same for every checkpoint of a run, so
    that checkpoints of one seed are scored with common random numbers (less noise in their differences)."""
    return derive("eval", run_seed, sampling_seed)


def training_seed(run_seed: int, round_index: int) -> int:
    """The seed a round's training starts from (new LoRA weights, dropout, the length buckets' order)."""
    return derive("training", run_seed, round_index)


def problem_seed(data_seed: int, run_seed: int, per_seed: bool) -> int:
    """The seed training problems are drawn from: `data.seed` alone (every seed of an experiment trains on the
    same problems), or combined with the run seed when `data.training_problems` is `per_seed`."""
    return derive("problems", data_seed, run_seed) if per_seed else data_seed


def filter_seed(data_seed: int, sampling_seed: int) -> int:
    """The base model's sampling seed in the difficulty filter: from `data.seed`, so every run seed of an
    experiment keeps the same problems (the filter chooses the curriculum, as data.seed does)."""
    return derive("filter", data_seed, sampling_seed)
