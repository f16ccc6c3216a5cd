# toolwire, the gRPC sidecar, as a container image. From the repository root:
#
#   docker build -t toolwire .                      # anywhere with a registry
#   make image                                       # here: podman on a base made with debootstrap
#
# The base is a build argument so that a machine with no registry can build on a local image with
# the same Python (see README, "Deploy"). It listens on 0.0.0.0:50051: a container's loopback is its
# own, so a server listening on 127.0.0.1 could not be reached from outside the container. Set
# TOOLWIRE_AUTH_TOKEN, or publish the port only where it is meant to be reached; in a Kubernetes pod
# prefer the Unix socket of deploy/kubernetes/. No key is baked in: OPENAI_API_KEY and
# ANTHROPIC_API_KEY come from the environment at run time.
ARG BASE_IMAGE=python:3.11-slim-bookworm
# The Go toolchain for the health probe (tools/go.mod needs Go 1.26 or later). Here `make image` builds
# this stage on the local base, with the machine's own Go mounted at /usr/local/go.
ARG GO_IMAGE=golang:1.26-bookworm

# The probe stage: grpc-health-probe (grpc-ecosystem's grpc-go client of grpc.health.v1), at the
# version pinned with checksums in tools/go.mod, static. The HEALTHCHECK runs it: a check costs the
# container about 1/20 of the CPU of `toolwire health`, a Python process whose `import grpc` alone
# takes ~0.2 s (`make bench`, docs/performance.md), every interval, as long as the container runs.
FROM ${GO_IMAGE} AS probe
ENV PATH=/usr/local/go/bin:$PATH \
    GOPATH=/go \
    GOCACHE=/go/build-cache \
    CGO_ENABLED=0
WORKDIR /tools
COPY tools/go.mod tools/go.sum ./
# The secret `ca_bundle`, as for pip below: the module proxy behind an inspecting proxy.
RUN --mount=type=secret,id=ca_bundle \
    --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/go/build-cache \
    if [ -s /run/secrets/ca_bundle ]; then export SSL_CERT_FILE=/run/secrets/ca_bundle; fi \
    && go build -trimpath -ldflags="-s -w" -o /usr/local/bin/grpc-health-probe \
       github.com/grpc-ecosystem/grpc-health-probe

# The build stage: one virtualenv holding toolwire and its Python client, nothing else.
# (.dockerignore lets in only pyproject.toml, README.md, server/, clients/python/ and the probe's
# tools/go.mod and go.sum.)
FROM ${BASE_IMAGE} AS build
COPY . /src
# The secret `ca_bundle` is optional: a CA bundle for a build machine whose HTTPS goes through an
# inspecting proxy (podman build --secret id=ca_bundle,src=FILE). It is mounted for this step only and
# never stored in a layer; without it pip uses its own bundle.
RUN --mount=type=secret,id=ca_bundle \
    if [ -s /run/secrets/ca_bundle ]; then export PIP_CERT=/run/secrets/ca_bundle; fi \
    && python3 -m venv /opt/toolwire \
    && PIP_DISABLE_PIP_VERSION_CHECK=1 /opt/toolwire/bin/pip install --no-cache-dir /src/clients/python /src \
    && /opt/toolwire/bin/pip uninstall --yes --quiet pip setuptools

# The runtime stage: the base, a user, the virtualenv, the health probe.
FROM ${BASE_IMAGE}
# A fixed, non-root uid/gid (Kubernetes' runAsNonRoot checks the numeric USER below).
RUN groupadd --gid 10001 toolwire \
    && useradd --no-log-init --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin toolwire
COPY --from=build /opt/toolwire /opt/toolwire
COPY --from=probe /usr/local/bin/grpc-health-probe /usr/local/bin/grpc-health-probe
ENV PATH=/opt/toolwire/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="toolwire" \
      org.opencontainers.image.description="A gRPC sidecar that streams LLM output and runs the tool-calling loop, with tools executed by the client." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
USER 10001:10001
EXPOSE 50051
# grpc.health.v1 through grpc-health-probe (the probe stage). Docker runs it inside the container, where
# the server's 0.0.0.0 listener answers on loopback. `toolwire health` does the same check with TLS
# flags of toolwire's own (`toolwire health --help`), at ~20 times the CPU.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["grpc-health-probe", "-addr=127.0.0.1:50051", "-connect-timeout=2s", "-rpc-timeout=3s"]
ENTRYPOINT ["toolwire"]
CMD ["serve", "--listen", "0.0.0.0:50051"]
