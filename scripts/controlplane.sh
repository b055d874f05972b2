#!/usr/bin/env bash
# Builds the test bed's real control plane: kube-apiserver, kube-scheduler and
# kube-controller-manager from the k8s.io/kubernetes Go module, and etcd from
# go.etcd.io/etcd/server/v3/embed (tests/controlplane). The e2e tests (tests/e2e_*.rs) run them.
#
#   scripts/controlplane.sh build     build if needed (quiet when up to date), link target/controlplane/bin
#   scripts/controlplane.sh path      print the directory holding the binaries (builds if needed)
#   scripts/controlplane.sh version   print the Kubernetes version that would be built
#
# Environment:
#   SPREADGUARD_K8S_VERSION   another release, e.g. v1.33.13 (default: the one tests/controlplane/go.mod
#                             requires); the module for it is generated under the cache by gomod.sh
#   SPREADGUARD_E2E_CACHE     where GOMODCACHE, GOCACHE and the built binaries live
#                             (default: target/controlplane); point several checkouts at one
#                             directory to share a build
#
# Binaries are rebuilt only when the Go sources, go.mod, go.sum, the build flags or the Go
# version change: they live in $cache/builds/<version>-<hash of those>, and target/controlplane/bin links to the
# current one. A cold build compiles about 3,000 Go packages: tens of minutes on 2 cores
# (README, "Testing"); it prints how long it took.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="$root/tests/controlplane"
cmd="${1:-build}"

target_dir="${CARGO_TARGET_DIR:-$root/target}"
[[ "$target_dir" = /* ]] || target_dir="$root/$target_dir"
cache="${SPREADGUARD_E2E_CACHE:-$target_dir/controlplane}"
mkdir -p "$cache" "$target_dir/controlplane"
cache="$(cd "$cache" && pwd)"

command -v go >/dev/null 2>&1 || { echo "controlplane.sh: go not found (Go 1.26 or newer builds the test bed)" >&2; exit 2; }
export GOMODCACHE="$cache/gomod" GOCACHE="$cache/gocache" CGO_ENABLED=0 GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
# -modcacherw: the module cache stays deletable (rm -rf target).
export GOFLAGS="-modcacherw -buildvcs=false ${GOFLAGS:-}"

default_version="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ {print $2; exit}' "$src/go.mod")"
version="${SPREADGUARD_K8S_VERSION:-$default_version}"
[[ "$version" =~ ^v1\.([0-9]+)\.[0-9]+$ ]] || { echo "controlplane.sh: bad version '$version' (want v1.Y.Z)" >&2; exit 2; }
minor="${BASH_REMATCH[1]}"

if [[ "$cmd" == version ]]; then echo "$version"; exit 0; fi
[[ "$cmd" == build || "$cmd" == path ]] || { echo "usage: scripts/controlplane.sh build|path|version" >&2; exit 2; }

# One build of a release at a time per cache (other checkouts may share it); Go itself
# guards its module and build caches, so builds of different releases run side by side.
exec 9>"$cache/.lock-$version"
flock 9

# The module to build: the committed one, or one generated for another release.
if [[ "$version" == "$default_version" ]]; then
  module="$src"
else
  module="$cache/module-$version"
  if [[ ! -f "$module/go.sum" || "$module/.from" -ot "$src/gomod.sh" ]]; then
    rm -rf "$module" && mkdir -p "$module"
    cp -r "$src/cmd" "$module/"
    "$src/gomod.sh" "$version" >"$module/go.mod"
    (cd "$module" && go mod tidy >/dev/null 2>"$module/tidy.log") \
      || { cat "$module/tidy.log" >&2; echo "controlplane.sh: go mod tidy for $version failed" >&2; exit 1; }
    touch "$module/.from"
  fi
fi

# What the binaries are built with; a change here or in the module rebuilds them.
pkg=k8s.io/component-base/version
ldflags="-s -w -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
packages=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
          k8s.io/kubernetes/cmd/kube-scheduler ./cmd/etcd)
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler)

hash="$(
  {
    echo "$version $ldflags ${packages[*]} CGO_ENABLED=$CGO_ENABLED -trimpath"
    go version
    cd "$module" && find . -name '*.go' -o -name go.mod -o -name go.sum | LC_ALL=C sort | xargs sha256sum
  } | sha256sum | cut -c1-16
)"
out="$cache/builds/$version-$hash"

if [[ ! -f "$out/.complete" ]]; then
  echo "controlplane.sh: building Kubernetes $version and etcd into $out (cold: tens of minutes)" >&2
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  start=$SECONDS
  log="$out.tmp/build.log"
  # One go build for the four binaries: their shared packages compile once.
  if ! (cd "$module" && nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$out.tmp/" "${packages[@]}") >"$log" 2>&1; then
    cat "$log" >&2
    echo "controlplane.sh: go build failed (log: $log)" >&2
    exit 1
  fi
  for b in "${binaries[@]}"; do [[ -x "$out.tmp/$b" ]] || { echo "controlplane.sh: $b missing after build" >&2; exit 1; }; done
  elapsed=$((SECONDS - start))
  echo "$version built in ${elapsed}s with $(go version | cut -d' ' -f3)" >"$out.tmp/.complete"
  rm -rf "$out" && mv "$out.tmp" "$out"
  printf 'controlplane.sh: built in %dm%02ds; module cache %s\n' $((elapsed / 60)) $((elapsed % 60)) \
    "$(du -sh "$GOMODCACHE" 2>/dev/null | cut -f1)" >&2
fi

ln -sfn "$out" "$target_dir/controlplane/bin"

# The e2e tests render the Helm chart with the chart tests' Helm SDK (target/chart-venv);
# tests/chart/run.sh creates it (quietly, from PyPI) and is only asked to collect, not run.
venv="$root/target/chart-venv"
if [[ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$(sha256sum "$root/tests/chart/requirements.txt" | cut -d' ' -f1)" ]]; then
  SPREADGUARD_BIN=/bin/true "$root/tests/chart/run.sh" --collect-only -q >/dev/null \
    || { echo "controlplane.sh: preparing $venv for the chart renders failed" >&2; exit 1; }
fi
if [[ "$cmd" == path ]]; then echo "$out"; fi
