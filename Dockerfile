# ogm-server with the built dashboard. Not built on the development machines (no Docker engine
# there); the compose file is validated with `docker-compose config`.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends binaryen && rm -rf /var/lib/apt/lists/*
RUN rustup target add wasm32-unknown-unknown \
 && cargo install trunk --version '~0.21' --locked
WORKDIR /src
COPY . .
RUN cargo install wasm-bindgen-cli --version "=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)"
RUN trunk build --release --offline && cargo build --release -p ogm-server

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 ogm && mkdir -p /data && chown ogm /data
COPY --from=build /src/target/release/ogm-server /usr/local/bin/ogm-server
COPY --from=build /src/dist /app/dist
USER ogm
ENV OGM_HTTP_ADDR=0.0.0.0:8080 OGM_DIST_DIR=/app/dist OGM_DATA_DIR=/data
EXPOSE 8080
CMD ["ogm-server"]
