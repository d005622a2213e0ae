"""The Hugging Face `generate` backend of the generation interface: batched, left-padded, seeded per batch.

Completions keep the exact sampled token ids and their log-probs under the policy's raw (unprocessed) logits.
"""

from __future__ import annotations

from pathlib import Path

from sdfb import faults
from sdfb.config import SamplingConfig
from sdfb.generation.base import Completion, Generation, Progress


class HFGenerator:
    """Batched, left-padded `transformers` generate on one loaded model (base plus an optional adapter)."""

    def __init__(
        self,
        model_name: str,
        dtype: str = "auto",
        adapter: Path | None = None,
        batch_size: int = 16,
        trust_remote_code: bool = False,
    ):
        from sdfb.models import load_model, load_tokenizer

        self.tokenizer = load_tokenizer(model_name, trust_remote_code)
        self.model = load_model(
            model_name, dtype=dtype, adapter=adapter, trust_remote_code=trust_remote_code
        ).eval()
        self.batch_size = batch_size

    def _check_lengths(self, encoded: list[list[int]], max_new_tokens: int) -> None:
        """Refuse prompts that leave no room to answer within the model's positions, before any generation."""
        from sdfb.generation.vllm_backend import PromptTooLongError

        limit = getattr(self.model.config, "max_position_embeddings", None)
        too_long = [len(ids) for ids in encoded if limit and len(ids) + max_new_tokens > limit]
        if too_long:
            raise PromptTooLongError(
                f"{len(too_long)} of {len(encoded)} prompts (longest {max(too_long)} tokens) leave no room "
                f"for max_new_tokens={max_new_tokens} within the model's {limit} positions; lower "
                "data.max_question_chars or the sampling's max_new_tokens. Prompts are never truncated."
            )

    def generate(
        self,
        prompts: list[str],
        sampling: SamplingConfig,
        want_logprobs: bool = True,
        progress: Progress | None = None,
    ) -> list[Generation]:
        import torch

        tok = self.tokenizer
        encoded = [tok(p, add_special_tokens=False)["input_ids"] for p in prompts]
        self._check_lengths(encoded, sampling.max_new_tokens)
        # Longest-first batches waste less padding; results go back in the caller's order.
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        results: dict[int, Generation] = {}
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            torch.manual_seed(sampling.seed + start)
            for i, completions in zip(
                idx, self._batch([encoded[i] for i in idx], sampling, want_logprobs), strict=True
            ):
                results[i] = Generation(encoded[i], completions)
            faults.point("generate:batch")
            if progress:
                progress(len(results), len(prompts))
        return [results[i] for i in range(len(prompts))]

    def prompt_logprobs(self, sequences: list[list[int]], starts: list[int]) -> list[list[float]]:
        """Teacher forcing with one forward per batch (right-padded), in the model's dtype."""
        import torch

        results = []
        for first in range(0, len(sequences), self.batch_size):
            batch = sequences[first : first + self.batch_size]
            width = max(len(s) for s in batch)
            ids = torch.tensor([list(s) + [0] * (width - len(s)) for s in batch])
            mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch])
            with torch.no_grad():
                logp = torch.log_softmax(self.model(input_ids=ids, attention_mask=mask).logits.float(), -1)
            for row, (seq, start) in enumerate(zip(batch, starts[first : first + len(batch)], strict=True)):
                positions = torch.arange(start, len(seq))
                results.append(logp[row, positions - 1, ids[row, positions]].tolist())
        return results

    def _batch(
        self, batch: list[list[int]], sampling: SamplingConfig, want_logprobs: bool
    ) -> list[list[Completion]]:
        import torch

        tok = self.tokenizer
        model = self.model
        width = max(len(ids) for ids in batch)
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch])
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch])
        greedy = sampling.temperature == 0
        eos_ids = _eos_ids(model, tok)
        with torch.inference_mode():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                do_sample=not greedy,
                temperature=None if greedy else sampling.temperature,
                top_p=None if greedy else sampling.top_p,
                top_k=None if greedy else (sampling.top_k or None),
                num_return_sequences=sampling.n,
                max_new_tokens=sampling.max_new_tokens,
                pad_token_id=pad,
                eos_token_id=eos_ids,
                output_logits=want_logprobs,
                return_dict_in_generate=True,
            )
        new_tokens = out.sequences[:, width:]
        if want_logprobs:
            logits = torch.stack(out.logits, dim=1).float()  # (batch*n, steps, vocab), raw
            token_logprobs = (
                torch.log_softmax(logits, dim=-1).gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
            )
        grouped: list[list[Completion]] = []
        for row in range(new_tokens.shape[0]):
            ids = new_tokens[row].tolist()
            stop = next((j for j, t in enumerate(ids) if t in eos_ids), None)
            kept = ids if stop is None else ids[: stop + 1]
            lps = token_logprobs[row, : len(kept)].tolist() if want_logprobs else []
            text = tok.decode(kept, skip_special_tokens=True)
            completion = Completion(kept, lps, text, "length" if stop is None else "stop")
            if row % sampling.n == 0:
                grouped.append([])
            grouped[-1].append(completion)
        return grouped


def _eos_ids(model, tokenizer) -> list[int]:
    configured = model.generation_config.eos_token_id
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return sorted(ids)
