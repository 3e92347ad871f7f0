#!/usr/bin/env bash
# `make bench`: side-by-side measurements against the lab, written to bench/results.md.
# Called after a release build (binaries in target/release/). The comparison with
# community.hashi_vault needs the `ansible` and `hvac` packages: they go into a separate
# virtualenv (.venv-bench, BENCH_VENV), created here and never used by `make test`.
#   BENCH_ONLY=harvest,sizes scripts/bench.sh   # a subset, by name: sizes harvest requests tasks
#                                              # task-floor redeploy-wait rotation (or the
#                                              # results' letters d b e a g c f)
#   BENCH_ROUNDS=5 scripts/bench.sh     # rounds per measurement (min and median shown; default 5)
#   BENCH_HARVEST_SLOW_MAX=200          # (b): also time ssh per container and the Ansible loop at 200
set -euo pipefail
cd "$(dirname "$0")/.."

BENCH_VENV=${BENCH_VENV:-.venv-bench}
ONLY=${BENCH_ONLY:-sizes,harvest,requests,tasks,task-floor,redeploy-wait,rotation}
ROUNDS=${BENCH_ROUNDS:-5}
OUT=bench/results.md
PY=${PYTHON:-python3}
# ansible 12.x ships community.hashi_vault and runs on ansible-core 2.19, the version .venv pins.
BENCH_REQUIREMENTS=("ansible>=12,<13" "hvac>=2,<3")

for b in sso-bench bench-noop-module bench-timed-module vault_full_write env_harvest redeploy_trigger; do
  if [ ! -x "target/release/$b" ]; then
    echo "bench: target/release/$b is missing; run: make bench (it builds the modules and sso-bench)" >&2
    exit 1
  fi
done

if [[ ,$ONLY, =~ ,(tasks|a|task-floor|g), ]]; then
  if [ ! -x "$BENCH_VENV/bin/ansible-playbook" ] || ! "$BENCH_VENV/bin/python" -c 'import hvac' 2>/dev/null; then
    echo "bench: installing ansible and hvac into $BENCH_VENV (only for the comparison)"
    [ -x "$BENCH_VENV/bin/python" ] || "$PY" -m venv "$BENCH_VENV"
    "$BENCH_VENV/bin/pip" install -q --disable-pip-version-check "${BENCH_REQUIREMENTS[@]}"
  fi
fi

mkdir -p bench
tmp=$(mktemp "bench/.results.XXXXXX")
trap 'rm -f "$tmp"' EXIT
echo "bench: measuring ($ONLY, $ROUNDS rounds each); this takes a few minutes"
target/release/sso-bench --bin-dir target/release --bench-venv "$BENCH_VENV" \
  --only "$ONLY" --rounds "$ROUNDS" >"$tmp"
# Each section measured now replaces its old self; a subset run keeps the others' figures.
scripts/bench-merge.py "$OUT" "$tmp" \
  "$(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(rustc --version)"
echo "bench: results in $OUT"
cat "$OUT"
