# syntax=docker/dockerfile:1
#
# soapgate's container image: the binary built with Cargo.toml's
# `production` profile, run as a non-root user (uid/gid 10001) from /app with
# the example configuration (soapgate.toml, wsdl/, mappings/, examples/) as
# its defaults. Mount your own over /app/soapgate.toml, /app/wsdl and
# /app/mappings, and a volume at /app/data for the embedded SQLite database.
# docs/deploy.md says how to run it; scripts/image-check.sh runs these same
# steps without Docker, and reads this file to do it: keep to the
# instructions it understands (it refuses any other).
#
#   docker build -t soapgate .
#   docker build --build-arg BUILD_PROFILE=release -t soapgate:quick .
#
# The builder's toolchain is the one the project builds and tests with
# (rustc 1.95.0; edition 2024), on the same Debian release as the runtime
# image, so the binary finds the glibc it was linked against.
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS builder
ARG BUILD_PROFILE=production
WORKDIR /src
COPY . .
# The cache mounts keep the crates and the build between image builds; the
# binary is copied out of the target folder within this step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    sh scripts/image-steps.sh build /out

FROM ${RUNTIME_IMAGE}
# CA certificates: TLS to AWS (Bedrock, SQS) and to an https OTLP collector.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=bind,source=scripts/image-steps.sh,target=/tmp/image-steps.sh \
    sh /tmp/image-steps.sh user /
COPY --from=builder /out/ /
USER 10001:10001
WORKDIR /app
# Inside a container the facade must listen beyond loopback. This wins over
# `listen` in a mounted soapgate.toml (the environment overrides the file):
# change the port here, with -e SOAPGATE_LISTEN=..., and the health check
# follows it.
ENV SOAPGATE_LISTEN=0.0.0.0:8080
EXPOSE 8080
# The image has no curl: bash's /dev/tcp asks /healthz on the port of
# SOAPGATE_LISTEN and expects HTTP 200. Plain HTTP only: with [tls] set,
# replace it (docs/deploy.md).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${SOAPGATE_LISTEN##*:} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && read -r status <&3 && [[ $status == HTTP/1.?' 200 '* ]]"]
# SIGTERM: stop accepting, finish the calls in flight, give the job workers
# worker.shutdown_grace_ms, hand the rest back to the queue (docs/deploy.md).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/soapgate"]
# Against Amazon Bedrock through the standard AWS chain. To try the image
# without AWS, run `serve --emulator` instead (never in production).
CMD ["serve"]
