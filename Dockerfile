# One image for the three binaries of the platform: command-api, query-api and
# projectors. Choose the binary with the container command (docker-compose.yml
# does); the default is command-api.
#
#   docker build -t ecommerce-platform .
#   docker run --rm ecommerce-platform query-api

# ---------------------------------------------------------------------------- build
FROM rust:1-bookworm AS builder

# rdkafka is built with its bundled librdkafka (feature cmake-build): it needs
# cmake and these headers. Debian's own librdkafka is too old for our brokers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      cmake libcurl4-openssl-dev libssl-dev libsasl2-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# sqlx must not try to reach a database while compiling.
ENV SQLX_OFFLINE=true \
    CARGO_TERM_COLOR=never

COPY . .
RUN cargo build --release --workspace --locked \
 && mkdir -p /out \
 && cp target/release/command-api target/release/query-api target/release/projectors /out/

# ---------------------------------------------------------------------------- runtime
FROM debian:bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates curl libssl3 libsasl2-2 libcurl4 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin app \
 && mkdir -p /app && chown app /app

COPY --from=builder /out/ /usr/local/bin/

WORKDIR /app
USER app
# Inside a container the HTTP listener must not be bound to loopback only.
ENV APP__HTTP__HOST=0.0.0.0 \
    RUST_LOG=info
EXPOSE 8080 8081 8082
CMD ["command-api"]
