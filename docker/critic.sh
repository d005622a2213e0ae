#!/usr/bin/env bash
# Serve the critic model on vLLM's OpenAI-compatible server (`sdfb serve-critic`) until stopped.
#
# Runs in the GPU image (docker/compose.yaml, profile `critic`) and natively with the venv's bin/ on PATH.
# Point runs at it with critic.kind=openai, critic.model=$SDFB_CRITIC_MODEL and
# critic.openai.base_url=http://HOST:$SDFB_CRITIC_PORT/v1; it answers GET /health once the model is loaded.
# Its /v1 routes require the API key SDFB_CRITIC_API_KEY, which the openai critic backend sends from the variable
# named by critic.openai.api_key_env (default SDFB_CRITIC_API_KEY).
#
# Environment:
#   SDFB_CRITIC_MODEL          required: alias, folder or hub id of the critic model (also its served name)
#   SDFB_CRITIC_API_KEY        required: the key clients must send (Authorization: Bearer ...)
#   SDFB_CRITIC_HOST           address to listen on (default 0.0.0.0)
#   SDFB_CRITIC_PORT           port to listen on (default 8000)
#   SDFB_CRITIC_MAX_MODEL_LEN  longest prompt plus reply, in tokens (default: the CLI's, 4096; QwQ-32B's
#                              critiques think at length: 32768, see docs/critic.md)
#   SDFB_CRITIC_TENSOR_PARALLEL_SIZE  GPUs the weights are split over (default 1; QwQ-32B in bf16: 2 x 80 GB)
#   SDFB_CRITIC_DTYPE          auto | bfloat16 | float16 | float32 (default: the CLI's, auto)
#   SDFB_CRITIC_MEMORY         GPU: share of each accelerator's memory (default: the CLI's, 0.85)
#   SDFB_CRITIC_KV_CACHE_GIB   CPU: KV cache size in GiB (default: the CLI's)
#   SDFB_CRITIC_TRUST_REMOTE_CODE=1  run Python code shipped with the model
#   SDFB_CRITIC_VLLM_ARGS      more `vllm serve` arguments, split on spaces, e.g. "--max-num-seqs 64 --enforce-eager"
# Extra arguments are passed to `sdfb serve-critic` (options first; vLLM's own after `--`); SDFB_CRITIC_VLLM_ARGS
# come last, after the script's own `--` or one it adds.
#
# Exit codes: 2 SDFB_CRITIC_MODEL or SDFB_CRITIC_API_KEY is unset; else sdfb serve-critic's own.
set -euo pipefail

if [[ -z "${SDFB_CRITIC_MODEL:-}" ]]; then
    echo "error: SDFB_CRITIC_MODEL is not set; set it to the critic's alias, folder or hub id," \
        "e.g. SDFB_CRITIC_MODEL=Qwen/QwQ-32B" >&2
    exit 2
fi
if [[ -z "${SDFB_CRITIC_API_KEY:-}" ]]; then
    echo "error: SDFB_CRITIC_API_KEY is not set; set it (e.g. \$(openssl rand -hex 24)) here and, under the same" \
        "name, on the workers whose runs use this critic: a critic without a key serves anyone who reaches it" >&2
    exit 2
fi

args=(--host "${SDFB_CRITIC_HOST:-0.0.0.0}" --port "${SDFB_CRITIC_PORT:-8000}" --api-key-env SDFB_CRITIC_API_KEY)
[[ -n "${SDFB_CRITIC_MAX_MODEL_LEN:-}" ]] && args+=(--max-model-len "$SDFB_CRITIC_MAX_MODEL_LEN")
[[ -n "${SDFB_CRITIC_TENSOR_PARALLEL_SIZE:-}" ]] && args+=(--tensor-parallel-size "$SDFB_CRITIC_TENSOR_PARALLEL_SIZE")
[[ -n "${SDFB_CRITIC_DTYPE:-}" ]] && args+=(--dtype "$SDFB_CRITIC_DTYPE")
[[ -n "${SDFB_CRITIC_MEMORY:-}" ]] && args+=(--memory "$SDFB_CRITIC_MEMORY")
[[ -n "${SDFB_CRITIC_KV_CACHE_GIB:-}" ]] && args+=(--kv-cache-gib "$SDFB_CRITIC_KV_CACHE_GIB")
[[ "${SDFB_CRITIC_TRUST_REMOTE_CODE:-0}" == 1 ]] && args+=(--trust-remote-code)

passthrough=()
if [[ -n "${SDFB_CRITIC_VLLM_ARGS:-}" ]]; then
    read -r -a passthrough <<<"$SDFB_CRITIC_VLLM_ARGS"
    [[ " $* " == *" -- "* ]] || passthrough=(-- "${passthrough[@]}")
fi
export DO_NOT_TRACK="${DO_NOT_TRACK:-1}"
exec sdfb serve-critic "$SDFB_CRITIC_MODEL" "${args[@]}" "$@" "${passthrough[@]}"
