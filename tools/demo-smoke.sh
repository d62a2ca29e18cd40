#!/usr/bin/env bash
# `make demo` as a person runs it, on this clone: it must print where to go, answer there, and stop
# cleanly on Ctrl-C (SIGINT). Bounded: 180 s to start (a fresh clone installs first), 30 s to stop.
set -euo pipefail
cd "$(dirname "$0")/.."

port="${DEMO_PORT:-18000}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

DEMO_PORT="$port" make --no-print-directory demo >"$log" 2>&1 &
demo=$!

for _ in $(seq 1 360); do
  grep -q '^Open ' "$log" && break
  if ! kill -0 "$demo" 2>/dev/null; then
    echo "demo-smoke: make demo exited before it was ready:" >&2
    tail -n 30 "$log" >&2
    exit 1
  fi
  sleep 0.5
done
grep '^Open ' "$log" || { echo "demo-smoke: no 'Open ...' line within 180 s" >&2; tail -n 30 "$log" >&2; kill -INT "$demo"; exit 1; }

status="$(curl -s -o /dev/null -w '%{http_code} %{redirect_url}' "http://127.0.0.1:${port}/")"
health="$(curl -s "http://127.0.0.1:${port}/health")"
echo "demo-smoke: GET / -> ${status}; GET /health -> ${health}"

# Ctrl-C reaches every process of the foreground group; here, make's children get it through make.
pkill -INT -P "$demo" || true
kill -INT "$demo" 2>/dev/null || true
code=0
for _ in $(seq 1 60); do
  kill -0 "$demo" 2>/dev/null || break
  sleep 0.5
done
if kill -0 "$demo" 2>/dev/null; then
  echo "demo-smoke: make demo did not stop within 30 s of Ctrl-C" >&2
  kill -KILL "$demo" || true
  exit 1
fi
wait "$demo" || code=$?

[[ "$status" == "302 http://127.0.0.1:$((port + 1))/oauth2/authorize?"* ]] || { echo "demo-smoke: / did not send the browser to sign in" >&2; exit 1; }
[[ "$health" == '{"status":"ok"}' ]] || { echo "demo-smoke: /health did not answer" >&2; exit 1; }
grep -q '^Stopped\.$' "$log" || { echo "demo-smoke: no clean stop (exit ${code}):" >&2; tail -n 10 "$log" >&2; exit 1; }
echo "demo-smoke: make demo started, answered and stopped cleanly"
