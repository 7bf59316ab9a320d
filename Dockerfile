# vigil's container image: a build stage, then a small runtime.
#   docker build -t vigil:dev .
#   docker run --rm vigil:dev run /etc/vigil/examples/fraud_job.toml --brokers kafka:9092 --metrics-addr 0.0.0.0:9898
# Linted by hadolint in the test command (.ci/test, scripts/deploy-check.sh).

FROM rust:1.95-bookworm AS build
# librdkafka is built from source by rdkafka-sys (make, gcc, perl, zlib and
# OpenSSL's headers: all in this image)
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p vigil --bin vigil \
    && install -D -m 0755 target/release/vigil /out/vigil

FROM debian:bookworm-slim
# ca-certificates and libssl3: TLS and SASL to brokers and registries;
# libvulkan1: the Vulkan loader, for wgpu on a GPU node (without a GPU the CPU
# twin runs the same math).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 libvulkan1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 vigil \
    && useradd --system --uid 10001 --gid vigil --home-dir /var/lib/vigil --create-home --shell /usr/sbin/nologin vigil
COPY --from=build /out/vigil /usr/local/bin/vigil
COPY examples/*.toml /etc/vigil/examples/
COPY deploy/prometheus /usr/share/vigil/prometheus
COPY deploy/grafana /usr/share/vigil/grafana
USER 10001:10001
WORKDIR /var/lib/vigil
# 9898: /metrics, /healthz, /readyz, /features; 2101: timely's cluster port
EXPOSE 9898 2101
ENTRYPOINT ["/usr/local/bin/vigil"]
CMD ["--help"]
