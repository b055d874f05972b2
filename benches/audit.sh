#!/usr/bin/env bash
# Measures `spreadguard audit` over 10,000 realistic Deployment documents (release build).
# Target: under 1 second. Usage: benches/audit.sh [documents] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
runs=${2:-5}
cargo build --release --quiet --bin spreadguard
mkdir -p target/bench
python3 benches/audit-10k.py "$n" > "target/bench/workloads-$n.yaml"
bin=target/release/spreadguard
for i in $(seq "$runs"); do
  start=$EPOCHREALTIME
  status=0
  "$bin" audit --nodes examples/nodes-3-zones.yaml -o json "target/bench/workloads-$n.yaml" > target/bench/report.json || status=$?
  end=$EPOCHREALTIME
  [ "$status" -le 1 ] || { echo "audit failed with exit $status" >&2; exit 1; }
  awk -v i="$i" -v a="$start" -v b="$end" 'BEGIN {printf "run %d: %.3f s\n", i, b - a}'
done | tee target/bench/audit-times.txt
sort -t: -k2 -n target/bench/audit-times.txt | awk -v n="$runs" '{t[NR]=$3} END {printf "median of %d runs over '"$n"' documents: %.3f s\n", n, t[int((n+1)/2)]}'
