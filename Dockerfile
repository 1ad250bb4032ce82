# syntax=docker/dockerfile:1
# The operator image: `docker build -t <registry>/vmray-operator:<version> .` (see README, VI admin).
# Base pinned by tag and digest (the multi-platform index of python:3.11.15-slim-bookworm).
ARG PYTHON_IMAGE=python:3.11.15-slim-bookworm@sha256:d29f48a31a8b408ed19272ca1e7b10ebae13b240a27e862d3d4217c528e2e0c3

# Build: the wheel and a virtualenv holding it and its pinned dependencies, made by the same script
# the packaging test runs (ci/scripts/install-operator.sh).
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY ci/scripts/install-operator.sh ci/scripts/operator-constraints.txt ci/scripts/
RUN sh ci/scripts/install-operator.sh /src /opt/vmray-operator

# Run: the base image and the virtualenv, nothing else; a non-root user with a numeric id (the
# Deployment's runAsUser), a read-only root file system is fine (bytecode is compiled at build).
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="vmray-operator" \
      org.opencontainers.image.description="Runs Ray clusters on vSphere Supervisor VMs through VM Operator" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /opt/vmray-operator /opt/vmray-operator
ENV PATH=/opt/vmray-operator/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 65532:65532
# 8080: liveness (/healthz); 9090: Prometheus /metrics (VMRAY_METRICS_PORT)
EXPOSE 8080 9090
ENTRYPOINT ["vmray-operator"]
# In a pod the operator uses the pod's ServiceAccount; VMRAY_LOG_FORMAT=json logs one JSON object a line.
CMD ["run"]
