# cloudrun-observability: the service image for Cloud Run.
#
# Build (what cloudbuild.yaml runs):  docker build -t IMAGE .
# The release binary is built with exactly the command CI uses: `cargo build --release --locked -p cloudrun-observability`.
#
#checkov:skip=CKV_DOCKER_2:Cloud Run ignores HEALTHCHECK; the startup and liveness probes on /healthz are set in terraform/run.tf.

# Shared toolchain stage: cargo-chef computes and builds the dependency graph on its own, so the
# expensive dependency layer is rebuilt only when Cargo.toml or Cargo.lock change.
FROM rust:1-bookworm AS chef
# No protoc: build.rs generates the emulator's server stubs with tonic-prost-build's `manual`
# builder from gcloud-sdk's prost types, without .proto files.
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# Dependencies only: this layer stays cached while only the service's own code changes.
RUN cargo chef cook --release --locked --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked -p cloudrun-observability
# The runtime image has glibc, libgcc_s and nothing else: fail the build if the binary needs more
# (an OpenSSL pulled in by a dependency's default features would fail at start on Cloud Run).
RUN sh infra-check/ldd-check.sh target/release/cloudrun-observability

# Runtime: glibc + libgcc_s + CA certificates, no shell, no package manager, uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /app/target/release/cloudrun-observability /cloudrun-observability
USER nonroot
# Cloud Run sets PORT; this default is for `docker run` elsewhere. The service listens on 0.0.0.0:$PORT.
ENV PORT=8080
EXPOSE 8080
ENTRYPOINT ["/cloudrun-observability"]
CMD ["serve"]
