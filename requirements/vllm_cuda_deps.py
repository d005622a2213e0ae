"""Write requirements/vllm-cuda-deps.txt: the pinned CUDA vLLM's own requirements, with fastapi's cap lifted.

Reads only the wheel's metadata from the package index (PEP 658; nothing large is downloaded).
Does not install.
    python requirements/vllm_cuda_deps.py          (`make vllm-cuda-deps`: rewrite it after a vLLM bump)
    python requirements/vllm_cuda_deps.py --check  (exit 1 if the file no longer matches the pinned vLLM)
"""

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PIN_FILE = HERE / "vllm-cuda.txt"
DEPS_FILE = HERE / "vllm-cuda-deps.txt"
# The platform of docker/Dockerfile.gpu and of most GPU servers; other platforms' wheels may declare
# other deps.
PLATFORM = "manylinux_2_28_x86_64"
# Only vLLM's HTTP server (`vllm serve`, docker/critic.sh) uses fastapi; prefect's server needs a newer one.
UNCAPPED = {"fastapi"}
HEADER = """\
# GENERATED from {pin}'s metadata ({platform}) by `make vllm-cuda-deps`; do not edit.
# vLLM's own requirements, resolved together with sdfb in one pip run; vLLM itself follows with --no-deps.
# Changed from the metadata: the upper bound on {uncapped} is dropped (prefect 3.9 needs fastapi>=0.139, vLLM
# asks for <0.137, but only vLLM's HTTP server uses it) and optional extras are left out.
# Why: docs/install.md.
"""


def pinned_vllm() -> str:
    """The one requirement in vllm-cuda.txt, e.g. 'vllm==0.33.0'."""
    lines = [ln.split("#")[0].strip() for ln in PIN_FILE.read_text().splitlines()]
    (pin,) = [ln for ln in lines if ln]
    return pin


def requires_dist(pin: str) -> list[str]:
    """The wheel's Requires-Dist, read by pip's resolver from the index's metadata files."""
    cmd = [
        *(sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet"),
        *("--only-binary=:all:", "--platform", PLATFORM, "--python-version", "3.12", "--report", "-", pin),
    ]
    report = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return report["install"][0]["metadata"].get("requires_dist", [])


def uncap(requirement: str) -> str:
    """'fastapi[standard]<0.137.0,>=0.133.0' -> 'fastapi[standard]>=0.133.0'; other requirements unchanged."""
    match = re.match(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?([^;]*)(;.*)?$", requirement)
    assert match, f"unparsed requirement: {requirement!r}"
    name, extras, specs, marker = match.groups()
    if name.lower() not in UNCAPPED:
        return requirement
    kept = [s.strip() for s in specs.split(",") if s.strip() and not s.strip().startswith("<")]
    return f"{name}{extras or ''}{','.join(kept)}{marker or ''}"


def render(pin: str, requirements: list[str]) -> str:
    kept = [uncap(r) for r in requirements if "extra ==" not in r]
    header = HEADER.format(pin=pin, platform=PLATFORM, uncapped=", ".join(sorted(UNCAPPED)))
    return header + "\n".join(kept) + "\n"


def main(check: bool) -> int:
    pin = pinned_vllm()
    expected = render(pin, requires_dist(pin))
    if not check:
        DEPS_FILE.write_text(expected)
        return 0
    if DEPS_FILE.read_text() != expected:
        print(
            f"{DEPS_FILE.name} does not match {pin}'s metadata; run `make vllm-cuda-deps`",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    sys.exit(main(parser.parse_args().check))
