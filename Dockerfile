# ogm-server with the built dashboard: the image of the docker-compose stack's `server`,
# `server-2` and `influxdb-tokens` services, and what scripts/setup-production runs
# `ogm-server setup` from. Not built on the development machines (no Docker engine there); the
# compose file is validated with `docker-compose config`.

# ---- Build: the dashboard (trunk, wasm32) and the server (release) --------------------------
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends binaryen && rm -rf /var/lib/apt/lists/*
# trunk 0.21 (0.22 needs a newer rustc) and the wasm-bindgen CLI that Cargo.lock pins, so the
# build downloads no tools of its own.
RUN rustup target add wasm32-unknown-unknown \
 && cargo install trunk --version '~0.21' --locked
COPY Cargo.lock /tmp/Cargo.lock
RUN cargo install wasm-bindgen-cli --version "=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' /tmp/Cargo.lock)"
WORKDIR /src
COPY . .
RUN trunk build --release --offline \
 && cargo build --release --locked -p ogm-server \
 && mkdir -p /out/data /out/tokens

# ---- Runtime: glibc and nothing else (no shell), as a non-root user -------------------------
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/ogm-server /usr/local/bin/ogm-server
COPY --from=build /src/dist /app/dist
# Volume mount points, owned by the image's user (nonroot, uid 65532) so that named volumes
# start out writable by it: the embedded store / InfluxDB spool, and the token directory.
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build --chown=65532:65532 /out/tokens /tokens
USER 65532:65532
ENV OGM_HTTP_ADDR=0.0.0.0:8080 OGM_DIST_DIR=/app/dist OGM_DATA_DIR=/data
EXPOSE 8080
# No shell or curl in the image: the binary checks itself (GET /api/health on OGM_HTTP_ADDR).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["ogm-server", "health"]
CMD ["ogm-server"]
