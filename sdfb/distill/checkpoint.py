"""A round's weights on disk: the final checkpoint (saved atomically, with the EMA teacher's state), the folder of
intra-round checkpoints a crashed round resumes from, and which process of a multi-process launch writes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sdfb.atomic import atomic_path
from sdfb.distill.teacher import EMA_FILE, TeacherState


def partial_dir(checkpoint: Path) -> Path:
    """Where the Trainer keeps this round's intra-round checkpoints until the round's outputs are finished."""
    return Path(checkpoint).with_name(Path(checkpoint).name + ".partial")


def is_main_process() -> bool:
    """Rank 0 of an `accelerate launch` (or the only process): the one that writes files."""
    return int(os.environ.get("RANK", "0")) == 0


def save_checkpoint(model, teacher: TeacherState | None, checkpoint: Path) -> Path:
    """The adapter (or full weights), and the EMA teacher's state when there is one, replacing `checkpoint` whole."""
    import torch

    with atomic_path(checkpoint) as staging:
        model.save_pretrained(staging)
        if teacher is not None and teacher.mode == "ema":
            torch.save(teacher.state_dict(), staging / EMA_FILE)
    return Path(checkpoint)


def load_teacher_state(teacher: TeacherState, folder: Path | str | None) -> bool:
    """Load the EMA teacher's state saved in `folder` (a round's or an intra-round checkpoint), if it is there."""
    import torch

    path = Path(folder) / EMA_FILE if folder else None
    if path is None or not path.exists():
        return False
    teacher.load_state_dict(torch.load(path, weights_only=False))
    return True


def discard_partial(checkpoint: Path) -> None:
    """Remove the intra-round checkpoints once the round's outputs and manifests are written."""
    shutil.rmtree(partial_dir(checkpoint), ignore_errors=True)
