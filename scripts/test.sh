#!/usr/bin/env bash
# Runs every test spreadguard has: formatting, lints, the Rust suites (unit, integration,
# router, TLS, e2e on a real control plane, doc tests, benches in test mode) and the Helm chart
# checks. It installs what the chart checks need (a virtualenv under target/) and builds the
# e2e control plane (Go, under target/ or $SPREADGUARD_E2E_CACHE) itself, idempotently and
# quietly.
# Usage: scripts/test.sh            (CI runs exactly this through .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp)
trap 'rm -f "$log"' EXIT
step() { printf '\n=== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --all-targets --locked --quiet -- -D warnings

# The e2e tests (tests/e2e_*.rs) run against a real kube-apiserver, scheduler and controller
# manager built from Kubernetes' Go modules: built once (tens of minutes cold, see README
# "Testing against a real control plane"), then only when tests/controlplane changes.
step "control plane for the e2e tests"
scripts/controlplane.sh build

step "cargo test"
cargo test --all-targets --locked 2>&1 | tee -a "$log"
cargo test --doc --locked 2>&1 | tee -a "$log"

if [ -x tests/chart/run.sh ]; then
  step "Helm chart"
  cargo build --locked --quiet --bin spreadguard
  SPREADGUARD_BIN="$PWD/target/debug/spreadguard" tests/chart/run.sh 2>&1 | tee -a "$log"
fi

if [ -x scripts/supply-chain.sh ]; then
  step "supply chain"
  scripts/supply-chain.sh
fi

# One closing line over every suite: cargo's "N passed; M failed" and pytest's "N passed".
passed=$(grep -Eo '([0-9]+) passed' "$log" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '([0-9]+) failed' "$log" | awk '{s+=$1} END {print s+0}')
echo
echo "total: ${passed} passed, ${failed} failed"
[ "$passed" -gt 0 ] && [ "$failed" -eq 0 ]
