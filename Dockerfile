# The kubedag controller image.
#
# Three stages. `requirements` reads what pyproject.toml asks for (the runtime
# dependencies with the object-store extras, and the build backend) into two small
# files. `build` downloads and builds the dependencies' wheels from those files alone,
# in a layer that a change to the controller's source (or to any other part of
# pyproject.toml) leaves cached, and only then copies the source and builds kubedag's
# own wheel, without downloading anything. The final stage is the slim image with the
# dependencies installed in a cached layer too, then kubedag, plus git (for git-sync
# and `kubedag run`'s commit pinning) and procps. It runs as an unprivileged user with
# a read-only root filesystem (the Deployment mounts writable volumes for /tmp, the
# checkouts and the log store).
#
# The base images are arguments so the same file builds on a mirror or on local
# stand-ins (`kubedag dev-cluster images` builds it on a Debian base made here).
ARG PYTHON_IMAGE=python:3.12
ARG PYTHON_SLIM_IMAGE=python:3.12-slim

FROM ${PYTHON_IMAGE} AS requirements
COPY pyproject.toml /src/pyproject.toml
RUN python3 -c 'import tomllib; \
p = tomllib.load(open("/src/pyproject.toml", "rb")); \
project, extras = p["project"], p["project"]["optional-dependencies"]; \
open("/requirements.txt", "w").write("\n".join(project["dependencies"] + extras["s3"] + extras["gcs"]) + "\n"); \
open("/build-requirements.txt", "w").write("\n".join(p["build-system"]["requires"]) + "\n")'

# `kubedag dev-cluster images` keeps this stage's layers under a name of its own
# (controller/devcluster/images.py), so the stage name is part of that contract.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# The dependencies: their layers change only when the lists above do.
COPY --from=requirements /requirements.txt /build-requirements.txt ./
RUN pip install --no-cache-dir -r build-requirements.txt \
 && pip wheel --no-cache-dir --wheel-dir /deps -r requirements.txt
# kubedag itself, with the build backend installed above: nothing to download.
COPY pyproject.toml README.md ./
COPY controller ./controller
RUN pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /app .

FROM ${PYTHON_SLIM_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates procps \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 65532 --user-group --home-dir /var/lib/kubedag --create-home kubedag
# The dependencies' wheels are mounted, not copied, so they take no room in the image;
# the list is copied so that this layer is rebuilt when, and only when, it changes.
COPY --from=requirements /requirements.txt /usr/local/share/kubedag/requirements.txt
RUN --mount=type=bind,from=build,source=/deps,target=/deps \
    pip install --no-cache-dir --no-index --find-links /deps \
      -r /usr/local/share/kubedag/requirements.txt
# kubedag's own wheel is copied (a mount would not tell the layer cache it changed).
COPY --from=build /app /tmp/app
RUN pip install --no-cache-dir --no-index --no-deps /tmp/app/*.whl && rm -rf /tmp/app
USER 65532:65532
WORKDIR /var/lib/kubedag
# No KUBEDAG_DATA_DIR here: it would override the config file's dataDir, and the root
# filesystem is read-only; the Deployment's ConfigMap names the writable volume.
ENV PYTHONUNBUFFERED=1
EXPOSE 8080
ENTRYPOINT ["kubedag"]
CMD ["controller"]
