#!/usr/bin/env bash
# Supply-chain check: cargo-deny over advisories (the offline RustSec copy in
# ../shared/advisory-db, never fetched), licenses, bans (incl. duplicate versions) and sources.
# Installs cargo-deny if missing (quietly, idempotently). Network: only the crate registry, for
# `cargo install` and `cargo fetch`. Policy: deny.toml.
# Usage: scripts/supply-chain.sh            (scripts/test.sh runs it)
set -euo pipefail
cd "$(dirname "$0")/.."

# The database copy, prepared as ../shared/advisory-db.README.md says: a one-commit git
# repository where deny.toml's db-path expects it (cargo-deny reads its HEAD timestamp).
shared_db="${SPREADGUARD_ADVISORY_DB:-../shared/advisory-db}"
db_root="target/advisory-db"
db="$db_root/advisory-db-3157b0e258782691"

if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "installing cargo-deny (once)"
  cargo install cargo-deny --locked --quiet
fi

if [ ! -d "$shared_db/crates" ]; then
  echo "supply-chain: no advisory database at $shared_db (expected ../shared/advisory-db)" >&2
  exit 2
fi

# Rebuilt when the shared copy changes (its newest file is newer than our marker).
stamp="$db/.spreadguard-copied"
if [ ! -f "$stamp" ] || [ -n "$(find "$shared_db" -newer "$stamp" -print -quit)" ]; then
  rm -rf "$db"
  mkdir -p "$db_root"
  cp -R "$shared_db" "$db"
  (
    cd "$db"
    rm -rf .git
    git init --quiet
    git add -A
    git -c user.name=spreadguard -c user.email=spreadguard@localhost \
      commit --quiet --no-gpg-sign -m "offline copy of rustsec/advisory-db"
  )
  touch "$stamp"
fi

# --offline reads neither the database nor crates from the network: every crate must be here.
cargo fetch --locked --quiet
# Duplicate versions are warnings (deny.toml); their inclusion graphs are left out to keep the
# output short: `cargo tree -i CRATE@VERSION` shows one.
cargo deny --offline --log-level warn check --hide-inclusion-graph advisories licenses bans sources
