# syntax=docker/dockerfile:1
# The Threadline server image: a static binary on a distroless base, running as a non-root user.
# docker-compose.yml builds it; `docker build -t threadline .` works alone too.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Modules first, so that code changes reuse the download layer.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO off: a static binary with Go's own DNS resolver, for a base image without libc.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags='-s -w' -o /out/threadline . \
 && CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags='-s -w' -o /out/healthcheck ./ops/docker/healthcheck

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/threadline /out/healthcheck /usr/local/bin/
# nonroot is uid 65532 in distroless images.
USER nonroot:nonroot
ENV ADDR=:8080
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/healthcheck", "http://127.0.0.1:8080/readyz"]
ENTRYPOINT ["/usr/local/bin/threadline"]
CMD ["serve"]
