# syntax=docker/dockerfile:1
#
# spreadguard container image.
#
#   docker build -t ghcr.io/spreadguard/spreadguard:0.1.0 .
#
# Two stages: a Rust toolchain image compiles a release binary; the runtime
# image holds that binary and nothing else.
#
# Runtime: gcr.io/distroless/cc-debian12:nonroot. The binary links glibc and
# libgcc_s (ring and rustls need nothing more), which is exactly what distroless
# "cc" provides, plus CA certificates and /etc/passwd: no shell, no package
# manager, no setuid binaries. The API server's CA comes from the mounted
# service account, not from the image. The ":nonroot" variant runs as uid/gid 65532,
# matching the chart's runAsUser/runAsGroup, so the pod satisfies the restricted
# Pod Security Standard and runs with a read-only root filesystem. For a
# reproducible build, pin both images by digest (image@sha256:...).

ARG RUST_VERSION=1.95

# === build ===
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src

# Only what the build reads: manifests, sources, the bench target Cargo.toml
# declares, and the files `serve --dev` embeds with include_str! (the example
# topology and the example AdmissionReview). tests/chart/test_dockerfile.py
# checks this list against the sources.
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY benches ./benches
COPY examples ./examples
COPY tests/fixtures/admission ./tests/fixtures/admission

# .git is not in the context: the commit for spreadguard_build_info comes from
# `--build-arg SPREADGUARD_BUILD_COMMIT=$(git rev-parse --short=12 HEAD)`
# ("unknown" without it).
ARG SPREADGUARD_BUILD_COMMIT=""

# Cache mounts keep the crate registry and the build directory between builds;
# the binary is copied out because the cache mount is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin spreadguard \
 && install -D -m 0755 target/release/spreadguard /out/spreadguard

# === runtime ===
FROM gcr.io/distroless/cc-debian12:nonroot

LABEL org.opencontainers.image.title="spreadguard" \
      org.opencontainers.image.description="Kubernetes admission webhook that keeps every workload alive through the loss of a zone" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/spreadguard/spreadguard"

COPY --from=build /out/spreadguard /usr/local/bin/spreadguard

# 8443: HTTPS for the API server (/mutate, /validate).
# 8080: plain HTTP admin port (/livez, /readyz, /metrics).
EXPOSE 8443 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/spreadguard"]
# The chart passes `serve --tls-cert ... --config ...`; without arguments the
# image prints its usage.
CMD ["--help"]
