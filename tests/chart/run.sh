#!/usr/bin/env bash
# Tests the Helm chart (charts/spreadguard): renders it with real Helm for a
# matrix of values, lints it strictly, validates every object against the
# Kubernetes 1.33 and newest schemas, checks what it means, and audits it with
# spreadguard itself.
#
#   tests/chart/run.sh [pytest arguments...]
#
# Works from any directory. Creates target/chart-venv on first use (quietly,
# and again only when requirements.txt changes) from PyPI; no other network.
# The dog-food test needs the spreadguard binary: $SPREADGUARD_BIN, else
# ${CARGO_TARGET_DIR:-target}/debug/spreadguard, built here if it is missing.
# Exits non-zero when any test fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="$root/target/chart-venv"
requirements="$root/tests/chart/requirements.txt"
stamp="$venv/.requirements.sha256"

python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
  done
fi
[[ -n "$python" ]] || { echo "run.sh: python3 not found" >&2; exit 2; }

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "run.sh: preparing $venv" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  log="$(mktemp)"
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      --no-input -r "$requirements" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "run.sh: installing the test requirements failed" >&2
    exit 2
  fi
  rm -f "$log"
  echo "$want" >"$stamp"
fi

if [[ -z "${SPREADGUARD_BIN:-}" ]]; then
  target_dir="${CARGO_TARGET_DIR:-$root/target}"
  [[ "$target_dir" = /* ]] || target_dir="$root/$target_dir"
  export SPREADGUARD_BIN="$target_dir/debug/spreadguard"
  if [[ ! -x "$SPREADGUARD_BIN" ]] && command -v cargo >/dev/null 2>&1; then
    echo "run.sh: building $SPREADGUARD_BIN" >&2
    (cd "$root" && cargo build --quiet --bin spreadguard)
  fi
fi

cd "$root/tests/chart"
exec "$venv/bin/python" -m pytest -c "$root/tests/chart/pytest.ini" "$@"
