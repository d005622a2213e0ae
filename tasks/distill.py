"""Self-distillation of one round: train the LoRA student on the round's rollouts and contexts, save the adapter.

No retries: a failed round resumes from the previous round's checkpoint when the flow is rerun.
"""

import shutil
import time
from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from sdfb import distill, schemas
from sdfb.config import RunConfig
from sdfb.generation import sleep_engines
from sdfb.models import load_tokenizer
from sdfb.runs import RunLayout, stage_key
from sdfb.store import finish_folder, is_finished, read_table, write_table
from tasks._stage import task_logger


@task(name="distill", cache_policy=NONE)
def distill_round(
    cfg: RunConfig, run_dir: str, round_index: int, rollouts: str, contexts: str, previous: str | None
) -> str:
    layout, logger = RunLayout(Path(run_dir)), task_logger()
    checkpoint, records = layout.checkpoint(round_index), layout.distill_records(round_index)
    key = stage_key(cfg, "distill", {"rollouts": rollouts, "contexts": contexts, "previous": previous})
    if is_finished(checkpoint, key) and is_finished(records, key):
        logger.info("distill: finished earlier, reusing %s", checkpoint)
        return str(checkpoint)
    started = time.perf_counter()
    sleep_engines()  # GPU: the rollout engine gives its memory back while training runs
    tokenizer = load_tokenizer(cfg.model.name_or_path)
    model = distill.prepare_model(
        cfg.model.name_or_path, cfg.model.dtype, cfg.distill, previous and Path(previous)
    )
    examples = distill.build_examples(read_table(rollouts), read_table(contexts), tokenizer)
    staging = checkpoint.with_name(checkpoint.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    if examples:
        result = distill.train_round(
            model, tokenizer, examples, cfg.distill, staging / "trainer", cfg.seed + round_index
        )
    else:
        logger.warning(
            "distill: no trainable samples this round (condition %r); adapter unchanged",
            cfg.context.condition,
        )
        result = distill.empty_round()
    shutil.rmtree(staging / "trainer", ignore_errors=True)
    model.save_pretrained(staging)
    shutil.rmtree(checkpoint, ignore_errors=True)
    staging.rename(checkpoint)
    extra = {"stage": "distill", "seconds": time.perf_counter() - started, "finished_at": time.time()}
    write_table(result["per_sample"], records, schemas.DISTILL, key, {**extra, "metrics": result["metrics"]})
    finish_folder(
        checkpoint, key, {**extra, "stage": "checkpoint", "seconds": 0.0, "metrics": result["metrics"]}
    )
    logger.info("distill: %s", result["metrics"])
    return str(checkpoint)
