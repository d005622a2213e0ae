"""Write hand-made stage tables as real Parquet files with manifests, the way earlier stages write them, so
one task can be run on its own. Columns a test does not care about get neutral values."""

from pathlib import Path

import pandas as pd

from sdfb import schemas
from sdfb.store import StageKey, write_table


def write_critique_inputs(
    folder: Path, rollouts: pd.DataFrame, problems: pd.DataFrame, grades: pd.DataFrame
) -> dict[str, str]:
    full = {
        "rollouts": rollouts.assign(
            prompt_text="",
            prompt_ids=[[1]] * len(rollouts),
            logprobs=rollouts["completion_ids"].map(lambda ids: [0.0] * len(ids)),
            policy_version="base",
        ),
        "problems": problems.assign(source="test", split="train"),
        "grades": grades.assign(
            extracted_answer="", status="wrong", checks_disagree=False, format_ok=True, n_steps=1
        ),
    }
    paths = {}
    for name, frame in full.items():
        schema = getattr(schemas, name.upper())
        paths[name] = str(folder / f"{name}.parquet")
        write_table(frame[schema.names], Path(paths[name]), schema, StageKey(0, "test", {}), {"stage": name})
    return paths
