#!/usr/bin/env bash
# How long a fresh clone takes to `make demo`'s "Open ..." line (issue 19, "First run").
#
#   bash tools/first-run-timing.sh [--runs N] [--cold] [--committed] [--keep]
#
# Each run: `git clone` this repository into an empty temporary folder, lay this work tree's
# uncommitted changes and untracked files over it (not with --committed), run `make demo` there and
# print, with the seconds since `make demo` started, every line it prints up to "Open ...". Then
# Ctrl-C (SIGINT) stops the demo, which must end with "Stopped.". Last, one line per run and the
# machine's load average before and after, since the figure depends on what else the machine does.
#
#   --cold       as on a machine that never installed this project: uv, pip and npm download every
#                package again (UV_CACHE_DIR, PIP_CACHE_DIR, npm_config_cache and the Makefile's UV_BOOTSTRAP_DIR
#                point to empty temporary folders). Without it, this user's caches are used, as a
#                developer or CI on this machine has them.
#   --committed  measure HEAD as committed, without this work tree's changes.
#   --keep       keep the clones (their paths are printed).
# DEMO_PORT (default 18123) is the first of the eleven ports the demo uses. PYTHONDONTWRITEBYTECODE is
# unset for `make demo`, as in a person's terminal (some tool environments set it).
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"

runs=1 cold=0 committed=0 keep=0
while (($#)); do
  case "$1" in
    --runs) runs="$2"; shift ;;
    --cold) cold=1 ;;
    --committed) committed=1 ;;
    --keep) keep=1 ;;
    *) echo "usage: $0 [--runs N] [--cold] [--committed] [--keep]" >&2; exit 2 ;;
  esac
  shift
done
port="${DEMO_PORT:-18123}"
results=()
work="$(mktemp -d /tmp/first-run.XXXXXX)"
cleanup() { ((keep)) || rm -rf "$work"; }
trap cleanup EXIT

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

one_run() {
  local n="$1" clone="$work/clone-$1" log="$work/demo-$1.log" env=() start now line ready="" demo code=0
  local t0 t_clone
  t0="$EPOCHREALTIME"
  git clone -q "$src" "$clone"
  t_clone="$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')"
  if ((!committed)); then
    git -C "$src" diff HEAD --binary | git -C "$clone" apply --allow-empty --whitespace=nowarn
    (cd "$src" && git ls-files --others --exclude-standard -z | tar --null -T - -cf -) | tar -xf - -C "$clone"
  fi
  if ((cold)); then
    mkdir -p "$work/cache-$n/uv" "$work/cache-$n/pip" "$work/cache-$n/npm"
    env+=("UV_CACHE_DIR=$work/cache-$n/uv" "PIP_CACHE_DIR=$work/cache-$n/pip" "npm_config_cache=$work/cache-$n/npm" "UV_BOOTSTRAP_DIR=$work/cache-$n/uv-home")
  fi

  echo "run $n: clone in ${t_clone} s ($clone); load average $(loadavg); make demo:"
  : >"$log"
  start="$EPOCHREALTIME"
  # setsid: the demo gets a process group of its own, so Ctrl-C can go to all of it as in a terminal.
  env -u PYTHONDONTWRITEBYTECODE "${env[@]}" DEMO_PORT="$port" setsid make --no-print-directory -C "$clone" demo >"$log" 2>&1 &
  demo=$!
  local shown=0 deadline=$((SECONDS + 600))
  while ((SECONDS < deadline)); do
    local total
    total="$(wc -l <"$log")"
    while ((shown < total)); do
      shown=$((shown + 1))
      line="$(sed -n "${shown}p" "$log")"
      now="$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%6.1f", b - a }')"
      printf '  %s s | %s\n' "$now" "$line"
      if [[ "$line" == "Open "* ]]; then ready="$now"; fi
    done
    [[ -n "$ready" ]] && break
    kill -0 "$demo" 2>/dev/null || break
    sleep 0.1
  done
  if [[ -z "$ready" ]]; then
    echo "run $n: no 'Open ...' line (make demo exited or 600 s passed); log: $log" >&2
    kill -INT -- "-$demo" 2>/dev/null || true
    wait "$demo" || true
    keep=1
    return 1
  fi
  kill -INT -- "-$demo"
  wait "$demo" || code=$?
  if ! grep -q '^Stopped\.$' "$log"; then
    echo "run $n: no clean stop after Ctrl-C (exit $code); log: $log" >&2
    keep=1
    return 1
  fi
  ready="${ready// /}"
  results+=("run $n: ${ready} s from make demo to 'Open ...' (clone ${t_clone} s); load average after $(loadavg)")
  ((keep)) || rm -rf "$clone" "$work/cache-$n"
}

echo "first-run timing: $runs run(s), $([[ $cold == 1 ]] && echo 'cold caches (uv, pip, npm)' || echo 'warm caches'), $([[ $committed == 1 ]] && echo 'HEAD as committed' || echo 'HEAD + this work tree'); $(nproc) cores"
for n in $(seq 1 "$runs"); do
  one_run "$n"
done
printf '%s\n' "${results[@]}"
