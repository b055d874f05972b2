#!/usr/bin/env bash
# Soak test of `spreadguard serve` (not part of scripts/test.sh): MINUTES minutes at RATE
# requests/s over TLS on loopback, a mix of kinds, operations and modes on /mutate and
# /validate, while the serving certificate is rotated and the policy reloaded by `..data`
# symlink swaps (as Kubernetes updates Secret and ConfigMap volumes).
#
#   benches/soak.sh                          # 10 minutes at 2,000 req/s
#   MINUTES=2 RATE=1000 benches/soak.sh      # a shorter run
#   SPREADGUARD_BIN=path benches/soak.sh     # test that binary instead of building one
#
# Load: three oha streams per minute, each from a file of ~40 review bodies (-Z): /mutate and
# /validate over TLS keep-alive, and /validate with a new TLS connection per request (so new
# handshakes keep seeing the rotated certificates). Passes (exit 0) when no request failed
# (non-200 or transport error), the rate was reached, every reload succeeded, and resident
# memory grew less than 5% from the end of minute 1 to the end. Prints p50/p99 per minute
# (client side per stream, and the server's own handling time from its histogram).
# Loopback only; bounded (every oha run has a timeout) and self-stopping (a trap kills
# everything it started).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
MINUTES=${MINUTES:-10}
RATE=${RATE:-2000}
PORT=${PORT:-28443}
ADMIN_PORT=${ADMIN_PORT:-28080}
ROTATE_EVERY=${ROTATE_EVERY:-30}
RELOAD_EVERY=${RELOAD_EVERY:-20}
LOG=${RUST_LOG:-warn}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

command -v oha >/dev/null || cargo install oha --locked
command -v python3 >/dev/null || { echo "python3 is needed to summarise" >&2; exit 2; }
if [[ -z "${SPREADGUARD_BIN:-}" ]]; then
    (cd "$ROOT" && cargo build --release --locked --quiet --bin spreadguard)
fi
BIN=${SPREADGUARD_BIN:-$CARGO_TARGET_DIR/release/spreadguard}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/spreadguard-soak.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    [[ -n "${KEEP:-}" ]] && echo "kept $WORK" || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Atomically points DIR/..data at TARGET (a sibling directory), as the kubelet does.
swap() {
    ln -sfn "$2" "$1/..data_tmp"
    mv -Tf "$1/..data_tmp" "$1/..data"
}

# --- certificates: four CA + serving certificate sets for spreadguard.soak.svc, as a Secret
# volume; oha trusts all four CAs, so every rotation is to a certificate it can verify.
mkdir -p "$WORK/tls"
: > "$WORK/ca-bundle.crt"
for i in 0 1 2 3; do
    "$BIN" certs generate --service spreadguard --namespace soak --out "$WORK/tls/..set-$i" > /dev/null
    cat "$WORK/tls/..set-$i/ca.crt" >> "$WORK/ca-bundle.crt"
done
swap "$WORK/tls" "..set-0"
ln -s ..data/tls.crt "$WORK/tls/tls.crt"
ln -s ..data/tls.key "$WORK/tls/tls.key"

# --- policy: two versions as a ConfigMap volume. Workload annotations choose the mode (so the
# mix covers every mode); the two versions differ in the default mode and the spread's skew.
mkdir -p "$WORK/config/..a" "$WORK/config/..b"
printf 'mode: enforce\nallowWorkloadOverride: true\nmaxSkew: 1\n' > "$WORK/config/..a/policy.yaml"
printf 'mode: warn\nallowWorkloadOverride: true\nmaxSkew: 2\n' > "$WORK/config/..b/policy.yaml"
swap "$WORK/config" "..a"
ln -s ..data/policy.yaml "$WORK/config/policy.yaml"

python3 "$ROOT/benches/soak/bodies.py" "$ROOT/tests/fixtures/admission" > "$WORK/bodies.jsonl"
echo "bodies: $(wc -l < "$WORK/bodies.jsonl") reviews, $(wc -c < "$WORK/bodies.jsonl") bytes"

RUST_LOG=$LOG "$BIN" serve --tls-cert "$WORK/tls/tls.crt" --tls-key "$WORK/tls/tls.key" \
    --config "$WORK/config/policy.yaml" --nodes "$ROOT/examples/nodes-3-zones.yaml" \
    --listen "127.0.0.1:$PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
    --reload-interval 1s --shutdown-grace 0s > "$WORK/server.out" 2> "$WORK/server.log" &
SERVER=$!
PIDS+=("$SERVER")
for _ in $(seq 100); do
    python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$ADMIN_PORT/readyz', timeout=1)" 2>/dev/null && break
    sleep 0.1
done
python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$ADMIN_PORT/readyz', timeout=1)" \
    || { echo "the server did not become ready:" >&2; cat "$WORK/server.log" >&2; exit 1; }

metrics() {
    python3 -c "import sys, urllib.request; open(sys.argv[1], 'w').write(urllib.request.urlopen('http://127.0.0.1:$ADMIN_PORT/metrics', timeout=5).read().decode())" "$1"
}

# --- background: resident memory every 2 s, certificate rotation, policy reload.
( while kill -0 "$SERVER" 2>/dev/null; do
      echo "$(date +%s.%N) $(awk '/^VmRSS/ {print $2}' "/proc/$SERVER/status")"
      sleep 2
  done ) > "$WORK/rss.txt" &
PIDS+=("$!")
( i=0
  while sleep "$ROTATE_EVERY"; do
      i=$(( (i + 1) % 4 )); swap "$WORK/tls" "..set-$i"; echo "$(date +%s.%N) ..set-$i"
  done ) > "$WORK/rotations.txt" &
PIDS+=("$!")
( v=a
  while sleep "$RELOAD_EVERY"; do
      v=$([[ $v == a ]] && echo b || echo a); swap "$WORK/config" "..$v"; echo "$(date +%s.%N) ..$v"
  done ) > "$WORK/reloads.txt" &
PIDS+=("$!")

HOST=spreadguard.soak.svc
oha_run() {  # OUT RATE EXTRA... URL
    local out=$1 rate=$2
    shift 2
    timeout 120 oha --no-tui --output-format json --cacert "$WORK/ca-bundle.crt" \
        --connect-to "$HOST:8443:127.0.0.1:$PORT" -m POST -H 'Content-Type: application/json' \
        -Z "$WORK/bodies.jsonl" -q "$rate" -z 60s -w "$@" > "$out"
}
FRESH=$(( RATE / 20 ))
KEPT=$(( (RATE - FRESH) / 2 ))
echo "server: $BIN (pid $SERVER, RUST_LOG=$LOG); $(nproc) CPUs shared with oha; $(uptime | sed 's/.*load/load/')"
echo "load: $MINUTES x 60 s at $RATE req/s: /mutate $KEPT + /validate $KEPT over keep-alive, /validate $FRESH on new connections; certificate rotated every ${ROTATE_EVERY}s, policy every ${RELOAD_EVERY}s"
date +%s.%N > "$WORK/started.txt"
for m in $(seq "$MINUTES"); do
    metrics "$WORK/metrics-$m-before.txt"
    oha_run "$WORK/minute-$m-mutate.json" "$KEPT" -c 8 "https://$HOST:8443/mutate" &
    a=$!
    oha_run "$WORK/minute-$m-validate.json" "$KEPT" -c 8 "https://$HOST:8443/validate" &
    b=$!
    oha_run "$WORK/minute-$m-fresh.json" "$FRESH" -c 4 --disable-keepalive "https://$HOST:8443/validate" &
    c=$!
    PIDS+=("$a" "$b" "$c")
    status=0
    wait "$a" || status=$?
    wait "$b" || status=$?
    wait "$c" || status=$?
    metrics "$WORK/metrics-$m-after.txt"
    date +%s.%N > "$WORK/minute-$m.end"
    [[ $status -eq 0 ]] || echo "minute $m: oha exited with $status"
    python3 "$ROOT/benches/soak/summarize.py" minute "$WORK" "$m"
done
metrics "$WORK/metrics-final.txt"
kill -0 "$SERVER" 2>/dev/null || { echo "the server died:" >&2; tail -20 "$WORK/server.log" >&2; exit 1; }
python3 "$ROOT/benches/soak/summarize.py" total "$WORK" "$MINUTES" "$RATE"
