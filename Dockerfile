# The kubedag controller image.
#
# Two stages: the wheel is built with the build tools of the full Python image, and
# the final stage is the slim image with only the installed package, git (for git-sync
# and `kubedag run`'s commit pinning) and openssh-client (for SSH remotes). It runs
# as an unprivileged user with a read-only root filesystem (the Deployment mounts
# writable volumes for /tmp, the checkouts and the log store).
#
# The base images are arguments so the same file builds on a mirror or on local
# stand-ins (`kubedag dev-cluster images` builds it on a Debian base made here).
ARG PYTHON_IMAGE=python:3.12
ARG PYTHON_SLIM_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY controller ./controller
# With the object-store extras, so logStore may be an s3:// or gs:// URL.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[s3,gcs]"

FROM ${PYTHON_SLIM_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates procps \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 65532 --user-group --home-dir /var/lib/kubedag --create-home kubedag
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 65532:65532
WORKDIR /var/lib/kubedag
# No KUBEDAG_DATA_DIR here: it would override the config file's dataDir, and the root
# filesystem is read-only; the Deployment's ConfigMap names the writable volume.
ENV PYTHONUNBUFFERED=1
EXPOSE 8080
ENTRYPOINT ["kubedag"]
CMD ["controller"]
