# kadmesh: dhtd (DHT node, HTTP surface, network page) and dhtctl.
#
#   docker build -t kadmesh .
#   docker run -p 8468:8468/udp -p 127.0.0.1:8080:8080 -v kadmesh-data:/var/lib/kadmesh kadmesh --seed coordinator.example.org:8468
#   docker compose up       # three seeds and four workers, the page on http://127.0.0.1:8080/
#
# Dependencies are compiled in their own layer (cargo-chef), so a source
# change rebuilds only kadmesh. The binaries use the `dist` profile (no debug
# info, stripped); the runtime image runs them as an unprivileged user.

FROM rust:1-bookworm AS chef
RUN cargo install cargo-chef --locked
WORKDIR /src

FROM chef AS plan
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS build
COPY --from=plan /src/recipe.json recipe.json
RUN cargo chef cook --profile dist --recipe-path recipe.json -p kadmesh
COPY . .
RUN cargo build --profile dist --locked -p kadmesh --bin dhtd --bin dhtctl

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/kadmesh --create-home --shell /usr/sbin/nologin kadmesh
COPY --from=build /src/target/dist/dhtd /src/target/dist/dhtctl /usr/local/bin/
USER kadmesh
# The state (node id, contacts, records) lives on the volume; HTTP listens on
# every interface inside the container (publish it deliberately).
ENV DHT_DATA_DIR=/var/lib/kadmesh \
    DHT_HTTP_BIND=0.0.0.0:8080 \
    DHT_BIND=0.0.0.0 \
    DHT_PORT=8468
VOLUME /var/lib/kadmesh
# UDP for the DHT (Python kademlia's default port), TCP for the HTTP surface and the page.
EXPOSE 8468/udp 8080/tcp
# Liveness through dhtd itself (no curl in the image): /health/live on DHT_HTTP_BIND.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 CMD ["dhtd", "health"]
ENTRYPOINT ["dhtd"]
