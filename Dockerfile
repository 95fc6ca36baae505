# syntax=docker/dockerfile:1
#
# modgate's container image: a static binary on Debian slim, which brings
# the git and ssh that private git sources need at run time (a distroless
# base has no git). Build from the repository root:
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t modgate .
#
# The image runs `modgate serve` as uid 65532 with its data in
# /var/lib/modgate (MODGATE_DATA_DIR); every other option comes from
# MODGATE_* variables, a --config file or further arguments
# (`docker run modgate --upstream https://...`: the image has no go
# command, so --upstream has no default here). It has no HEALTHCHECK:
# orchestrators probe GET /healthz and GET /readyz.

ARG GO_VERSION=1.26
ARG DEBIAN_RELEASE=trixie

FROM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
# Dependencies first, in their own layer, so that a source change does
# not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
# VERSION is what `modgate version` and the start-up log line report; the
# build context has no .git (see .dockerignore), so nothing else names it.
ARG VERSION=devel
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -buildvcs=false \
        -ldflags "-s -w -X main.version=${VERSION}" \
        -o /out/modgate ./cmd/modgate

FROM debian:${DEBIAN_RELEASE}-slim
# git and openssh-client: modgate clones private modules from their git
# servers over https or ssh (GOPRIVATE-style --private). ca-certificates:
# every https upstream, git server, checksum database and S3 endpoint.
# tini: PID 1 that reaps orphans. modgate kills a timed-out git with its
# whole process group; the helpers git had started (git-remote-https,
# ssh) are then reparented to PID 1, and modgate, which waits only for
# its own children, would leave them as zombies.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates git openssh-client tini \
    && rm -rf /var/lib/apt/lists/*
# A fixed non-root uid/gid (65532, as distroless's "nonroot"), so that
# Kubernetes' runAsNonRoot can check it and volume ownership (fsGroup) is
# predictable. Its home is the data dir: git and ssh read their per-user
# configuration there, and nothing else of the file system is writable.
RUN groupadd --gid 65532 modgate \
    && useradd --uid 65532 --gid 65532 --home-dir /var/lib/modgate --no-create-home \
        --shell /usr/sbin/nologin modgate \
    && install -d -o 65532 -g 65532 -m 0750 /var/lib/modgate
COPY --from=build /out/modgate /usr/local/bin/modgate
USER 65532:65532
WORKDIR /var/lib/modgate
# An environment variable rather than a flag, so that both MODGATE_DATA_DIR
# and --data-dir can still move it (flags win over the environment).
ENV HOME=/var/lib/modgate MODGATE_DATA_DIR=/var/lib/modgate
EXPOSE 8080
VOLUME ["/var/lib/modgate"]
# tini passes SIGTERM on to modgate, which drains in-flight downloads
# (--shutdown-timeout) before it exits.
ENTRYPOINT ["/usr/bin/tini", "--", "modgate", "serve"]
