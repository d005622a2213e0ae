#!/usr/bin/env bash
# Start the Prefect API server (with its UI) on PostgreSQL, after checking that the database answers.
#
# It refuses to start without basic auth (PREFECT_SERVER_API_AUTH_STRING) or with a well-known default password
# (prefect, postgres, password, changeme, admin) for the API or the database: anyone who reaches the API can start
# deployments, which run code on the workers (docs/deployment-security.md).
# The check connects with asyncpg (retrying while the database starts), creates the pg_trgm extension
# Prefect's migrations use, then execs `prefect server start`, which migrates the schema on start.
# Runs in the sdfb image (docker/compose.yaml) and natively with the venv's bin/ on PATH.
#
# Environment:
#   PREFECT_API_DATABASE_CONNECTION_URL  required: postgresql+asyncpg://USER:PASSWORD@HOST:5432/DB
#                      (a non-PostgreSQL URL, e.g. sqlite+aiosqlite:///..., skips the check)
#   PREFECT_SERVER_API_AUTH_STRING  required: USER:PASSWORD that every API call and the UI must present
#                      (clients and workers set PREFECT_API_AUTH_STRING to the same value)
#   SDFB_SERVER_HOST   address to listen on (default 0.0.0.0)
#   SDFB_SERVER_PORT   port to listen on (default 4200)
#   SDFB_DB_WAIT       seconds to keep retrying an unreachable database (default 30)
#   SDFB_UI_API_URL    the API URL the browser UI calls, e.g. http://localhost:4200/api (default: Prefect's)
# Extra arguments are passed to `prefect server start`.
#
# Exit codes: 2 the URL or the auth string is unset, unreadable or a default; 3 the database cannot be reached
# (the `error: cannot reach` line; prefect itself also exits 3 when its start-up fails, e.g. migrations); else
# prefect's own.
set -euo pipefail

if [[ -z "${PREFECT_API_DATABASE_CONNECTION_URL:-}" ]]; then
    echo "error: PREFECT_API_DATABASE_CONNECTION_URL is not set; set it to the Prefect database," \
        "e.g. postgresql+asyncpg://prefect:PASSWORD@postgres:5432/prefect" >&2
    exit 2
fi

# Example values of compose files and tutorials: a server that holds one lets in whoever tries it.
export SDFB_WEAK_SECRETS="prefect postgres password changeme change-me admin"
auth="${PREFECT_SERVER_API_AUTH_STRING:-}"
if [[ "$auth" != ?*:?* ]]; then
    echo "error: PREFECT_SERVER_API_AUTH_STRING is not set to USER:PASSWORD; without it anyone who reaches the" \
        "API can run code on the workers. Set it (e.g. sdfb:\$(openssl rand -hex 16)) and give workers and" \
        "clients the same value as PREFECT_API_AUTH_STRING" >&2
    exit 2
fi
for weak in $SDFB_WEAK_SECRETS; do
    if [[ "${auth#*:}" == "$weak" ]]; then
        echo "error: the password in PREFECT_SERVER_API_AUTH_STRING is the well-known default '$weak';" \
            "choose another (e.g. openssl rand -hex 16)" >&2
        exit 2
    fi
done
unset auth

HOST="${SDFB_SERVER_HOST:-0.0.0.0}"
PORT="${SDFB_SERVER_PORT:-4200}"
export SDFB_DB_WAIT="${SDFB_DB_WAIT:-30}"
export DO_NOT_TRACK="${DO_NOT_TRACK:-1}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false
if [[ -n "${SDFB_UI_API_URL:-}" ]]; then
    export PREFECT_UI_API_URL="$SDFB_UI_API_URL"
fi

python - <<'EOF'
import asyncio
import os
import sys
import time

import asyncpg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

raw = os.environ["PREFECT_API_DATABASE_CONNECTION_URL"]
try:
    url = make_url(raw)
except ArgumentError:
    # The URL is not echoed: an unparsable one may still hold a password.
    print("error: PREFECT_API_DATABASE_CONNECTION_URL is not a database URL; expected "
          "postgresql+asyncpg://USER:PASSWORD@HOST:5432/DB", file=sys.stderr)
    sys.exit(2)
shown = url.render_as_string(hide_password=True)
if url.get_backend_name() != "postgresql":
    print(f"server.sh: {shown} is not PostgreSQL; skipping the database check", file=sys.stderr)
    sys.exit(0)
if not url.password or url.password in os.environ["SDFB_WEAK_SECRETS"].split():
    print(f"error: the database password in {shown} is empty or a well-known default; set POSTGRES_PASSWORD "
          "(and the database user's password) to another one, e.g. openssl rand -hex 16", file=sys.stderr)
    sys.exit(2)

dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
wait_s = float(os.environ["SDFB_DB_WAIT"])


def reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    return text.replace(url.password, "***") if url.password else text


def fail(exc: BaseException) -> None:
    print(f"error: cannot reach the Prefect database at {shown} ({reason(exc)})", file=sys.stderr)
    sys.exit(3)


async def connect() -> "asyncpg.Connection":
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await asyncpg.connect(dsn, timeout=max(1.0, min(10.0, deadline - time.monotonic())))
        # Network errors and a starting database are worth waiting for; a wrong password or a
        # missing database is not.
        except (OSError, asyncio.TimeoutError, asyncpg.CannotConnectNowError) as exc:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                fail(exc)
            await asyncio.sleep(min(1.0, remaining))
        except asyncpg.PostgresError as exc:
            fail(exc)


async def main() -> None:
    conn = await connect()
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except asyncpg.InsufficientPrivilegeError:
        print(f"warning: no permission to create the pg_trgm extension in database {url.database}; it must "
              "be created by a superuser (or the database's owner: CREATE EXTENSION pg_trgm;) before "
              "Prefect's migrations run", file=sys.stderr)
    finally:
        await conn.close()
    print(f"server.sh: database {shown} is reachable", file=sys.stderr)


asyncio.run(main())
EOF

exec prefect server start --host "$HOST" --port "$PORT" "$@"
