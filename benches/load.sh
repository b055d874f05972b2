#!/usr/bin/env bash
# Load test of `spreadguard serve`: POST /mutate with a ~4 KB Deployment review over TLS
# keep-alive, on loopback, with oha (installed with `cargo install oha --locked` if missing).
#
#   benches/load.sh                  # 5 throughput runs at -c 16, then 1,000 req/s fixed rate
#   RUNS=3 DURATION=5s benches/load.sh
#   GO_BASELINE=1 benches/load.sh    # also a Go net/http webhook, runs interleaved with ours
#
# Prints each run's throughput and client latency percentiles, the median throughput, and the
# server's own handling time (p50/p99, from its spreadguard_admission_duration_seconds
# histogram, scraped before and after each run). Loopback only; bounded and self-stopping.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS=${RUNS:-5}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-16}
RATE=${RATE:-1000}
RATE_DURATION=${RATE_DURATION:-20s}
PORT=${PORT:-18443}
ADMIN_PORT=${ADMIN_PORT:-18080}
LOG=${RUST_LOG:-info}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

command -v oha >/dev/null || cargo install oha --locked
command -v python3 >/dev/null || { echo "python3 is needed to summarise" >&2; exit 2; }

# SPREADGUARD_BIN=path skips the build and tests that binary.
if [[ -z "${SPREADGUARD_BIN:-}" ]]; then
    (cd "$ROOT" && cargo build --release --quiet --bin spreadguard)
fi
BIN=${SPREADGUARD_BIN:-$CARGO_TARGET_DIR/release/spreadguard}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/spreadguard-load.XXXXXX")
SERVER=""
GO_SERVER=""
GO_PORT=${GO_PORT:-18444}
cleanup() {
    for pid in $SERVER $GO_SERVER; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    local dev
    dev=$(grep -o '/[^ ]*/spreadguard-dev-[A-Za-z0-9_-]*' "$WORK/server.out" 2>/dev/null | head -1 || true)
    [[ -n "$dev" ]] && rm -rf "$dev"
    rm -rf "$WORK"
}
trap cleanup EXIT

# The review, compact as the API server sends it (about 4 KB).
python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])), separators=(",", ":")), end="")' \
    "$ROOT/tests/fixtures/admission/deployment-create.json" > "$WORK/review.json"
echo "review body: $(wc -c < "$WORK/review.json") bytes"

RUST_LOG=$LOG "$BIN" serve --dev --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
    --shutdown-grace 0s > "$WORK/server.out" 2> "$WORK/server.log" &
SERVER=$!

metrics() { python3 - "$1" "$ADMIN_PORT" <<'PY'
import sys, urllib.request
open(sys.argv[1], "w").write(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[2]}/metrics", timeout=5).read().decode())
PY
}
for _ in $(seq 100); do
    if python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$ADMIN_PORT/readyz', timeout=1)" 2>/dev/null; then
        break
    fi
    sleep 0.1
done
DEV=$(grep -o '/[^ ]*/spreadguard-dev-[A-Za-z0-9_-]*' "$WORK/server.out" | head -1)
[[ -n "$DEV" ]] || { echo "server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1; }

URL="https://127.0.0.1:$PORT/mutate"
run_oha() {
    timeout 600 oha --no-tui --output-format json --cacert "$DEV/ca.crt" -m POST \
        -H 'Content-Type: application/json' -D "$WORK/review.json" "$@"
}

if [[ -n "${GO_BASELINE:-}" ]]; then
    command -v go >/dev/null || { echo "GO_BASELINE needs go (apt-get install golang-go)" >&2; exit 2; }
    (cd "$ROOT/benches/load/go-baseline" && GOCACHE="$WORK/gocache" GO111MODULE=off go build -o "$WORK/go-webhook" main.go)
    "$WORK/go-webhook" -cert "$DEV/tls.crt" -key "$DEV/tls.key" -listen "127.0.0.1:$GO_PORT" 2> "$WORK/go.log" &
    GO_SERVER=$!
    sleep 0.5
    run_oha -c "$CONNECTIONS" -z 2s "https://127.0.0.1:$GO_PORT/mutate" > /dev/null
fi

echo "server: $BIN (pid $SERVER, RUST_LOG=$LOG), $(nproc) CPUs shared with oha; $(uptime | sed 's/.*load/load/')"
echo "warm-up..."
run_oha -c "$CONNECTIONS" -z 2s "$URL" > /dev/null

echo "throughput: $RUNS runs of $DURATION with oha -c $CONNECTIONS (HTTP/1.1 keep-alive over TLS)"
for i in $(seq "$RUNS"); do
    metrics "$WORK/metrics-$i-before.txt"
    run_oha -c "$CONNECTIONS" -z "$DURATION" -w "$URL" > "$WORK/run-$i.json"
    metrics "$WORK/metrics-$i-after.txt"
    if [[ -n "$GO_SERVER" ]]; then
        run_oha -c "$CONNECTIONS" -z "$DURATION" -w "https://127.0.0.1:$GO_PORT/mutate" > "$WORK/go-$i.json"
    fi
done
python3 "$ROOT/benches/load/summarize.py" throughput "$WORK"
if [[ -n "$GO_SERVER" ]]; then
    python3 "$ROOT/benches/load/summarize.py" throughput "$WORK" go
fi

echo "latency: fixed $RATE req/s for $RATE_DURATION (oha -q $RATE -c 4 --latency-correction)"
metrics "$WORK/metrics-rate-before.txt"
run_oha -c 4 -q "$RATE" -z "$RATE_DURATION" -w --latency-correction "$URL" > "$WORK/rate.json"
metrics "$WORK/metrics-rate-after.txt"
python3 "$ROOT/benches/load/summarize.py" latency "$WORK"
