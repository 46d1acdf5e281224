# syntax=docker/dockerfile:1
# One build for both binaries; choose the image with `--target operator` or
# `--target echo-server`. Needs only this build context and public base images.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# The manifest declares the span-cost benchmark: cargo wants its file even for --bin builds.
COPY benches ./benches
# Cache mounts keep the registry and target directory between builds (Tilt rebuilds often);
# the binaries are copied out because the cache is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin operator --bin echo-server \
    && cp target/release/operator target/release/echo-server /usr/local/bin/

# distroless/cc has glibc and libgcc, no shell, and runs as uid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot AS echo-server
COPY --from=build /usr/local/bin/echo-server /usr/local/bin/echo-server
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/echo-server"]

FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=build /usr/local/bin/operator /usr/local/bin/operator
USER 65532:65532
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/operator"]
