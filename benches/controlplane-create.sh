#!/usr/bin/env bash
# Create latency of the real kube-apiserver with and without spreadguard registered:
# 1,000 Deployments per arm in one run (see benches/controlplane_create.rs).
#
#   benches/controlplane-create.sh            # CREATES=200 for a quicker run
#
# Builds the control plane (scripts/controlplane.sh, cached) and a release spreadguard.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/controlplane.sh build
exec cargo bench --quiet --bench controlplane_create
