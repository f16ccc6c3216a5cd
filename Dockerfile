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

# The build stage: one virtualenv holding toolwire and its Python client, nothing else.
# (.dockerignore lets in only pyproject.toml, README.md, server/ and clients/python/.)
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

# The runtime stage: the base, a user, the virtualenv.
FROM ${BASE_IMAGE}
# A fixed, non-root uid/gid (Kubernetes' runAsNonRoot checks the numeric USER below).
RUN groupadd --gid 10001 toolwire \
    && useradd --no-log-init --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin toolwire
COPY --from=build /opt/toolwire /opt/toolwire
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
# grpc.health.v1 through the image's own client. Docker runs it inside the container, where the
# server's 0.0.0.0 listener answers on loopback.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["toolwire", "health", "--address", "127.0.0.1:50051", "--timeout", "3"]
ENTRYPOINT ["toolwire"]
CMD ["serve", "--listen", "0.0.0.0:50051"]
