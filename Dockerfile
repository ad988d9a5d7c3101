# Build: docker build -t kadmesh .
# Run a node that joins a network:  docker run -p 8468:8468/udp -p 8080:8080 kadmesh --seed coordinator.example.org:8468
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin dhtd --bin dhtctl

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/kadmesh --create-home kadmesh
COPY --from=build /src/target/release/dhtd /src/target/release/dhtctl /usr/local/bin/
USER kadmesh
VOLUME /var/lib/kadmesh
# UDP for the DHT (Python kademlia's default port), TCP for the HTTP surface.
EXPOSE 8468/udp 8080/tcp
ENTRYPOINT ["dhtd"]
CMD ["--port", "8468"]
