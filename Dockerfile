# Redrive: SQS-compatible server and DLQ toolkit. Multi-stage: build with the Rust toolchain,
# run on a slim Debian as a non-root user with the data directory on a volume.
#   docker build -t redrive .
#   docker run -p 9324:9324 -v redrive-data:/data redrive
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
# The same command .ci/run exercises (there in the dev profile).
RUN cargo build --release --locked -p redrive \
    && strip target/release/redrive

FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 redrive \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home redrive \
    && mkdir -p /data \
    && chown redrive:redrive /data
COPY --from=build /src/target/release/redrive /usr/local/bin/redrive
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
ENV REDRIVE_HOST=0.0.0.0 \
    REDRIVE_PORT=9324 \
    REDRIVE_DATA_DIR=/data
EXPOSE 9324
# The binary probes itself (the image has no curl): exit 0 when /_redrive/health answers.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["redrive", "health"]
ENTRYPOINT ["redrive"]
CMD ["serve"]
