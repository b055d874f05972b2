#!/usr/bin/env bash
# Tests the posture page in real headless Chromium (Debian's `chromium` package), driven by
# playwright-core from the npm registry (no browser download): the page from `serve --ui`
# and from an `audit -o html` file, exact counts of a known cluster, filters, sorting, the
# zone panel and the detail by mouse and by keyboard, and 10,000 workloads within the
# first-paint budget. Screenshots and the first-paint figures go to target/browser-screenshots/.
#
#   tests/browser/run.sh [node --test arguments, e.g. tests/html.test.js]
#
# Works from any directory. Installs what it needs, quietly and only when missing: chromium
# through apt-get (when it is not there and apt-get can run), playwright-core with `npm ci`
# into tests/browser/node_modules (again only when package-lock.json changes). Without a
# chromium it cannot install, it says so and exits 0 (1 with SPREADGUARD_BROWSER_REQUIRED=1).
# The spreadguard binary: $SPREADGUARD_BIN, else ${CARGO_TARGET_DIR:-target}/debug/spreadguard,
# built here if missing. Ends with "browser: N passed, M failed"; exits non-zero on a failure.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

skip() {
  echo "browser: not run: $*" >&2
  if [[ "${SPREADGUARD_BROWSER_REQUIRED:-0}" == 1 ]]; then exit 1; fi
  exit 0
}

if [[ ! -x "$CHROMIUM" ]]; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "run.sh: installing chromium (apt-get)" >&2
    log="$(mktemp)"
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
           DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core; } >"$log" 2>&1; then
      tail -20 "$log" >&2
      rm -f "$log"
      skip "chromium is missing and apt-get could not install it"
    fi
    rm -f "$log"
  fi
  [[ -x "$CHROMIUM" ]] || skip "no chromium at $CHROMIUM (install Debian's chromium package)"
fi
command -v node >/dev/null 2>&1 || skip "node is missing (install Debian's nodejs and npm packages)"
command -v npm >/dev/null 2>&1 || skip "npm is missing (install Debian's npm package)"

stamp="$here/node_modules/.package-lock.sha256"
want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
  echo "run.sh: npm ci (playwright-core)" >&2
  (cd "$here" && npm ci --silent --no-audit --no-fund --ignore-scripts >/dev/null)
  echo "$want" >"$stamp"
fi

target="${CARGO_TARGET_DIR:-$root/target}"
export SPREADGUARD_BIN="${SPREADGUARD_BIN:-$target/debug/spreadguard}"
if [[ ! -x "$SPREADGUARD_BIN" ]]; then
  (cd "$root" && cargo build --locked --quiet --bin spreadguard)
fi

mkdir -p "$target/browser-screenshots"
tap="$(mktemp)"
trap 'rm -f "$tap"' EXIT
status=0
(cd "$here" && node --test --test-concurrency=1 \
  --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$tap" \
  "${@:-tests/}") || status=$?
passed="$(grep -Eo '^# pass [0-9]+' "$tap" | awk '{print $3}' | tail -1)"
failed="$(grep -Eo '^# fail [0-9]+' "$tap" | awk '{print $3}' | tail -1)"
echo "browser: ${passed:-0} passed, ${failed:-0} failed"
[[ -f "$target/browser-screenshots/first-paint.json" ]] && echo "first paint figures: $target/browser-screenshots/first-paint.json"
exit "$status"
