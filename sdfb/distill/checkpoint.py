"""A round's weights on disk: the final checkpoint (saved atomically, with the EMA teacher's
state), the EMA state in intra-round checkpoints, and which process of a multi-process launch
writes. Writes no tables or manifests."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sdfb.atomic import atomic_path
from sdfb.distill.teacher import TeacherState

EMA_FILE = "teacher_ema.pt"


def partial_dir(checkpoint: Path) -> Path:
    """Where the Trainer keeps this round's intra-round checkpoints until the round's outputs are finished."""
    return Path(checkpoint).with_name(Path(checkpoint).name + ".partial")


def is_main_process() -> bool:
    """Rank 0 of an `accelerate launch` (or the only process): the one that writes files."""
    return int(os.environ.get("RANK", "0")) == 0


def save_teacher_state(teacher: TeacherState | None, folder: Path) -> None:
    """The EMA teacher's weights into `folder`; the other teachers are
    rebuilt from the model and need no file."""
    import torch

    if teacher is not None and teacher.mode == "ema":
        torch.save(teacher.state_dict(), Path(folder) / EMA_FILE)


def load_teacher_state(teacher: TeacherState, folder: Path | str | None) -> bool:
    """Continue the EMA teacher saved in `folder` (the previous round's checkpoint, or the
    intra-round one a round resumes from), if it is there; without it the EMA starts at the current
    student. Other teachers load nothing."""
    import torch

    path = Path(folder) / EMA_FILE if folder else None
    if teacher.mode != "ema" or path is None or not path.exists():
        return False
    # weights_only=False: the file holds a dict with the mode string beside the tensors, written by this code
    teacher.load_state_dict(torch.load(path, weights_only=False))
    return True


STATS_FILE = "round_stats.json"


def save_round_stats(stats: dict, folder: Path) -> None:
    """What the round has recorded so far (losses, per-sample and per-token records), beside an intra-round
    checkpoint, so a resumed round still reports every sample, including those trained on before the crash."""
    (Path(folder) / STATS_FILE).write_text(json.dumps(stats))


def load_round_stats(folder: Path | str | None) -> dict | None:
    path = Path(folder) / STATS_FILE if folder else None
    return json.loads(path.read_text()) if path is not None and path.exists() else None


def save_checkpoint(model, teacher: TeacherState | None, checkpoint: Path) -> Path:
    """The adapter (or full weights), and the EMA teacher's state when there is one, replacing `checkpoint`
    whole: a crash while saving leaves the previous folder (or none), never a half-written one."""
    with atomic_path(checkpoint) as staging:
        model.save_pretrained(staging)
        save_teacher_state(teacher, staging)
    return Path(checkpoint)


def discard_partial(checkpoint: Path) -> None:
    """Remove the intra-round checkpoints once the round's outputs and manifests are written."""
    shutil.rmtree(partial_dir(checkpoint), ignore_errors=True)
