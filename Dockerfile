# Two images (targets):
# - `server` (the default, last stage): ogm-server with the built dashboard: the image of the
#   docker-compose stack's `server`, `server-2` and `influxdb-tokens` services, and what
#   scripts/setup-production runs `ogm-server setup` from.
# - `broker`: the compose stack's Mosquitto: Debian bookworm's mosquitto 2.0.11 (the very
#   version the tests run the policy on) with the project's broker plugin, which
#   mosquitto/conf.d/policy.conf loads (a broker without it does not start).
# Not built on the development machines (no Docker engine there); the compose file is validated
# with `docker-compose config`, the broker configs are run by devstack/tests/.

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

# ---- The broker plugin (a cdylib for glibc, as Debian's mosquitto loads it) ------------------
FROM rust:1.95-bookworm AS plugin-build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p ogm-mosquitto-plugin

# ---- The broker: `docker build --target broker` ---------------------------------------------
# Debian's package, not the eclipse-mosquitto image: that one is Alpine (musl), which cannot load
# a glibc plugin, and follows newer 2.0.x releases than the tests run. The layout is the eclipse
# image's (/mosquitto/config, /mosquitto/data, uid 1883), so the mounts and the file modes they
# need (SECURITY.md) stay as they were.
FROM debian:bookworm-slim AS broker
RUN apt-get update \
 && apt-get install -y --no-install-recommends mosquitto mosquitto-clients \
 && rm -rf /var/lib/apt/lists/* \
 && mosquitto -h | grep -qx 'mosquitto version 2\.0\.11' \
 && mkdir -p /mosquitto/config /mosquitto/data \
 && chown 1883:1883 /mosquitto/data
# policy.conf names the plugin without a directory; the dynamic linker finds it here.
COPY --from=plugin-build /src/target/release/libogm_mosquitto_plugin.so /usr/lib/ogm/
ENV LD_LIBRARY_PATH=/usr/lib/ogm
# Not root, so mosquitto does not switch users; uid 1883 must read the mounted passwd and certs.
USER 1883:1883
EXPOSE 1883 9001
CMD ["/usr/sbin/mosquitto", "-c", "/mosquitto/config/mosquitto.conf"]

# ---- Runtime: glibc and nothing else (no shell), as a non-root user -------------------------
FROM gcr.io/distroless/cc-debian12:nonroot AS server
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
