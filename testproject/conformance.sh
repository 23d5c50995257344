#!/usr/bin/env bash
# WebSocket conformance: the Autobahn TestSuite (cases 1-10) against
# runwsserver + runworker + a throwaway redis-server, on testproject's echo
# consumer (/ws/echo/, answered through the channel layer).
#
#   testproject/conformance.sh            # from anywhere; exit 1 on a failure
#
# Env: AUTOBAHN_DIR (default: ../shared/autobahn beside the repository or,
#      in a git worktree, beside the main checkout),
#      PYTHON (default: the repository's .venv, else python3),
#      CASES (default: 1-10).
# Passes when no case FAILED except 9.x cases whose message exceeds the
# server's message limit and which the server closed with 1009.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
SUITE="${AUTOBAHN_DIR:-$REPO/../shared/autobahn}"
if [ ! -x "$SUITE/run_suite.sh" ] && [ -z "${AUTOBAHN_DIR:-}" ]; then
  # A git worktree: beside the main checkout instead.
  COMMON="$(git -C "$REPO" rev-parse --path-format=absolute --git-common-dir 2>/dev/null)"
  [ -n "$COMMON" ] && SUITE="$(dirname "$COMMON")/../shared/autobahn"
fi
if [ ! -x "$SUITE/run_suite.sh" ] && [ -z "${AUTOBAHN_DIR:-}" ]; then
  # A clone (as CI makes): beside the checkout it was cloned from.
  ORIGIN="$(git -C "$REPO" remote get-url origin 2>/dev/null)"
  [ -d "$ORIGIN" ] && SUITE="$ORIGIN/../shared/autobahn"
fi
if [ ! -x "$SUITE/run_suite.sh" ]; then
  echo "conformance: skipped, no Autobahn runner at $SUITE (set AUTOBAHN_DIR)"
  exit 0
fi
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then PYTHON="$REPO/.venv/bin/python"; else PYTHON=python3; fi
fi
# A relative path still works after the cd below.
case "$PYTHON" in /*) ;; */*) PYTHON="$PWD/$PYTHON" ;; esac
command -v redis-server >/dev/null || { echo "conformance: redis-server is not installed" >&2; exit 1; }
# wstest needs Python 2.7; without it there is no suite to run.
if ! WSTEST="$("$SUITE/setup_suite.sh" 2>"${TMPDIR:-/tmp}/conformance-setup.$$" | tail -1)" \
    || [ ! -x "$WSTEST" ]; then
  echo "conformance: skipped, the Autobahn suite could not be built:"
  tail -3 "${TMPDIR:-/tmp}/conformance-setup.$$"
  rm -f "${TMPDIR:-/tmp}/conformance-setup.$$"
  exit 0
fi
rm -f "${TMPDIR:-/tmp}/conformance-setup.$$"
export WSTEST

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

REDIS_PORT="$(free_port)"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$WORK" >"$WORK/redis.log" 2>&1 &
PIDS+=($!)

export CHANNELS_REDIS_HOSTS="redis://127.0.0.1:$REDIS_PORT/0"
export DJANGO_DB="$WORK/db.sqlite3" PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
cd "$HERE"
"$PYTHON" manage.py runwsserver 127.0.0.1:0 >"$WORK/server.log" 2>&1 &
PIDS+=($!)
"$PYTHON" manage.py runworker >"$WORK/worker.log" 2>&1 &
PIDS+=($!)

PORT=""
for _ in $(seq 100); do
  PORT="$(grep -o 'http://127.0.0.1:[0-9]*' "$WORK/server.log" | head -1 | cut -d: -f3)"
  [ -n "$PORT" ] && break
  sleep 0.1
done
if [ -z "$PORT" ]; then
  echo "conformance: runwsserver did not start:" >&2
  cat "$WORK/server.log" >&2
  exit 1
fi

echo "conformance: wstest against ws://127.0.0.1:$PORT/ws/echo/ (runwsserver + runworker + redis-server :$REDIS_PORT)"
CASES="${CASES:-1.*,2.*,3.*,4.*,5.*,6.*,7.*,8.*,9.*,10.*}" REPORTS="$WORK/reports" \
  PYTHON="$PYTHON" "$SUITE/run_suite.sh" "ws://127.0.0.1:$PORT/ws/echo/" channels >"$WORK/suite.out" 2>&1
head -2 "$WORK/suite.out"
if [ ! -s "$WORK/reports/channels/index.json" ]; then
  echo "conformance: the suite produced no report:" >&2
  tail -5 "$WORK/suite.out" >&2
  exit 1
fi
"$PYTHON" "$HERE/conformance_check.py" "$WORK/reports/channels/index.json"
