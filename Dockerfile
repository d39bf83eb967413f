# syntax=docker/dockerfile:1
#
# oppsync container image.
#
#   docker build -t oppsync:dev --build-arg VERSION=$(git describe --tags --always) .
#   docker run --rm -p 8080:8080 -e OPPSYNC_KAFKA_BROKERS=kafka:9092 oppsync:dev
#
# The Avro schemas of the Salesforce change events are embedded in the binary
# (schemas/), so the image needs no schema files for Confluent-framed messages.
# Raw Pub/Sub-framed messages need `schemas.dir` (a directory of
# <schemaId>.avsc files): mount one and set OPPSYNC_SCHEMAS_DIR, or write the
# embedded ones with `oppsync schemas export --dir D` (planned).

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Dependencies first so that source edits do not invalidate this layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/oppsync ./cmd/oppsync

# distroless/static: no shell, no package manager; "nonroot" runs as uid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/oppsync /oppsync
# A config equal to the defaults, so `docker run` works with OPPSYNC_* env vars
# alone; mount your own file over it (Kubernetes: a ConfigMap).
COPY deploy/docker/config.yml /etc/oppsync/config.yml
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/oppsync"]
CMD ["run", "--config", "/etc/oppsync/config.yml"]
