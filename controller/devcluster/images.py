"""The container images a real node runs, built here with no registry.

No image registry can be reached from the machines this project is built on, so every
image a real node needs is built locally and loaded into containerd under the exact
name the manifests and the sample DAGs use; `IfNotPresent` then never pulls:

- a Debian bookworm base, from `debootstrap --variant=minbase` (the apt mirror works);
- stand-ins on that base for the public images kubedag uses by default: the Python
  images the samples and the Dockerfile name (Debian's Python 3.11 with pip, under
  `python:3.12-slim` and `python:3.12`) and the git checkout image (`alpine/git`);
- the pod sandbox (pause) image, from the kubelet source's own `pause.c`;
- the controller image, from the project's Dockerfile, unchanged.

Images are built with buildah (chroot isolation, host network) in a storage of its own
under the cache directory and exported as docker archives, which is what containerd
imports. Each archive's file name carries a hash of what it was built from, so a change
to a Containerfile or to the controller's source builds anew and nothing else does.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from controller.devcluster import packages
from controller.devcluster.layout import cache_dir
from controller.devcluster.readiness import ClusterError

BASE_IMAGE = "kubedag.local/debian:bookworm"
PAUSE_IMAGE = "kubedag.local/pause:3.4.1"
CONTROLLER_IMAGE = "ghcr.io/kubedag/kubedag:0.1.0"
"""The image manifests/base/deployment.yaml names."""
BUILD_STAGE = "build"
"""The Dockerfile's stage that builds the wheels."""
BUILD_STAGE_IMAGE = "kubedag.local/controller-build:cache"
BUILD_PACKAGES = ("buildah", "debootstrap", "gcc", "libc6-dev")
BUILD_TIMEOUT = 1800.0

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
"""Trusted by the stand-ins too, so builds pass a TLS-inspecting proxy the host trusts."""
_PYTHON = f"""FROM {BASE_IMAGE}
RUN apt-get update \\
 && apt-get install -y --no-install-recommends python3 python3-pip ca-certificates \\
 && rm -rf /var/lib/apt/lists/* \\
 && ln -s /usr/bin/python3 /usr/local/bin/python \\
 && ln -s /usr/bin/pip3 /usr/local/bin/pip
COPY host-ca-certificates.crt /usr/local/share/ca-certificates/host-ca-certificates.crt
RUN update-ca-certificates
# The public image's pip installs into its own interpreter; Debian's must be told to.
ENV PIP_BREAK_SYSTEM_PACKAGES=1 LANG=C.UTF-8
CMD ["python3"]
"""
_GIT = f"""FROM {BASE_IMAGE}
RUN apt-get update \\
 && apt-get install -y --no-install-recommends git ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["git"]
"""
_PAUSE = """FROM scratch
COPY pause /pause
ENTRYPOINT ["/pause"]
"""


@dataclass(frozen=True)
class StandIn:
    """A local image standing in for a public one, under the public names."""

    names: tuple[str, ...]
    containerfile: str


STAND_INS: tuple[StandIn, ...] = (
    StandIn(("docker.io/library/python:3.12-slim", "docker.io/library/python:3.12"), _PYTHON),
    StandIn(("docker.io/alpine/git:2.45.2",), _GIT),
)


def images_dir() -> Path:
    return cache_dir() / "images"


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def source_files(root: Path) -> list[Path]:
    """What the Dockerfile copies: a change to any of them means a new controller image."""
    names = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md")
    found = [root / name for name in names if (root / name).exists()]
    found += sorted(
        p for p in (root / "controller").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    return found


class ImageBuilder:
    """Builds the images into the cache; `ensure()` returns the archives to import."""

    def __init__(self, *, source_root: Path, log: Callable[[str], None] = print) -> None:
        self.source_root = source_root
        self._log = log
        self.root = images_dir()
        self.archives = self.root / "archives"

    def ensure(self) -> list[Path]:
        """Under a lock: test sessions of several checkouts build into one cache."""
        self.archives.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._ensure()

    def _ensure(self) -> list[Path]:
        dockerfile = self.source_root / "Dockerfile"
        if not dockerfile.exists():
            raise ClusterError(
                f"no Dockerfile in {self.source_root}: the controller image is built from a "
                "source checkout of kubedag"
            )

        def archive(name: str, *parts: bytes) -> Path:
            return self.archives / f"{name}-{_digest(*parts)}.tar"

        stand_ins = {
            archive(f"standin-{_slug(s.names[0])}", s.containerfile.encode(), _host_ca()): s
            for s in STAND_INS
        }
        pause = archive("pause", _PAUSE.encode())
        controller = archive(
            "controller", *(p.read_bytes() for p in source_files(self.source_root))
        )
        paths = [*stand_ins, pause, controller]
        if all(path.exists() for path in paths):
            return paths
        packages.ensure(BUILD_PACKAGES, why="building the real node's images", log=self._log)
        # Every build into this storage holds the lock, so a working container seen here is
        # left from a build that was killed; it would keep its image from being pruned.
        self._buildah("rm", "--all")
        self._ensure_base()
        for path, stand_in in stand_ins.items():
            if not path.exists():
                self._build(names=stand_in.names, containerfile=stand_in.containerfile, out=path)
        if not pause.exists():
            self._build_pause(out=pause)
        if not controller.exists():
            self._build_controller(dockerfile, out=controller)
        _remove_stale(self.archives, keep=paths)
        return paths

    # -- steps -----------------------------------------------------------------------

    def _build_controller(self, dockerfile: Path, *, out: Path) -> None:
        self._log("building the controller image from the Dockerfile")
        bud = ("bud", "--isolation", "chroot", "--network", "host", "--pull-never", "--layers")
        # The build stage first, under a name: the pruning below keeps a named image's
        # layers, and one of them holds the downloaded dependencies, which the next
        # build after a source change then takes from the cache.
        self._buildah(
            *bud,
            "--target",
            BUILD_STAGE,
            "-t",
            BUILD_STAGE_IMAGE,
            "-f",
            str(dockerfile),
            str(self.source_root),
        )
        self._buildah(*bud, "-t", CONTROLLER_IMAGE, "-f", str(dockerfile), str(self.source_root))
        self._export(CONTROLLER_IMAGE, (CONTROLLER_IMAGE,), out)
        # Each source change leaves the previous images behind, untagged.
        self._buildah("rmi", "--prune")

    def _ensure_base(self) -> None:
        if self._has_image(BASE_IMAGE):
            return
        self._log("making the Debian bookworm base image (debootstrap, about a minute)")
        with tempfile.TemporaryDirectory(dir=self.root) as tmp:
            rootfs = Path(tmp) / "rootfs"
            _run(
                ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), _mirror()],
                what="debootstrap",
            )
            archive = Path(tmp) / "rootfs.tar"
            _run(["tar", "-C", str(rootfs), "-cf", str(archive), "."], what="tar")
            container = self._buildah("from", "scratch").strip()
            self._buildah("add", container, str(archive), "/")
            self._buildah("config", "--env", "LANG=C.UTF-8", "--cmd", '["bash"]', container)
            self._buildah("commit", "-q", container, BASE_IMAGE)
            self._buildah("rm", container)

    def _build(self, *, names: tuple[str, ...], containerfile: str, out: Path) -> None:
        self._log(f"building {', '.join(names)} (a local stand-in)")
        with tempfile.TemporaryDirectory(dir=self.root) as tmp:
            (Path(tmp) / "Containerfile").write_text(containerfile)
            (Path(tmp) / "host-ca-certificates.crt").write_bytes(_host_ca())
            tags = [arg for name in names for arg in ("-t", name)]
            self._buildah(
                "bud", "--isolation", "chroot", "--network", "host", "--pull-never", *tags, tmp
            )
        self._export(names[0], names, out)

    def _build_pause(self, *, out: Path) -> None:
        self._log(f"building {PAUSE_IMAGE} from the kubelet source's pause.c")
        with tempfile.TemporaryDirectory(dir=self.root) as tmp:
            source = Path(tmp) / "pause.c"
            source.write_bytes(_pause_source(Path(tmp)))
            _run(["gcc", "-Os", "-static", "-o", str(Path(tmp) / "pause"), str(source)], what="gcc")
            (Path(tmp) / "Containerfile").write_text(_PAUSE)
            self._buildah("bud", "--isolation", "chroot", "-t", PAUSE_IMAGE, tmp)
        self._export(PAUSE_IMAGE, (PAUSE_IMAGE,), out)

    def _export(self, image: str, names: Iterable[str], out: Path) -> None:
        """A docker archive carrying every name, written whole or not at all."""
        partial = out.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        first, *others = names
        self._buildah("push", "-q", image, f"docker-archive:{partial}:{first}")
        if others:
            # docker-archive holds one name per push; containerd tags the rest on import.
            (out.with_suffix(".names")).write_text("\n".join(others) + "\n")
        partial.rename(out)

    # -- buildah ---------------------------------------------------------------------

    def _buildah(self, *args: str) -> str:
        argv = [
            "buildah",
            "--root",
            str(self.root / "storage"),
            "--runroot",
            str(self.root / "run"),
            "--storage-driver",
            "overlay",
            *args,
        ]
        return _run(argv, what=f"buildah {args[0]}")

    def _has_image(self, name: str) -> bool:
        try:
            self._buildah("inspect", "--type", "image", name)
        except ClusterError:
            return False
        return True


def extra_names(archive: Path) -> list[str]:
    """The names an archive's image also goes by (see `_export`)."""
    path = archive.with_suffix(".names")
    return path.read_text().split() if path.exists() else []


def _host_ca() -> bytes:
    return HOST_CA_BUNDLE.read_bytes() if HOST_CA_BUNDLE.exists() else b""


def _slug(name: str) -> str:
    return name.rsplit("/", 1)[-1].replace(":", "-")


def _remove_stale(folder: Path, *, keep: list[Path]) -> None:
    kept = {p.name for p in keep} | {p.with_suffix(".names").name for p in keep}
    for path in folder.iterdir():
        if path.name not in kept:
            path.unlink(missing_ok=True)


def _mirror() -> str:
    """The Debian mirror apt uses here, so debootstrap reaches what apt reaches."""
    for path in [*sorted(Path("/etc/apt").rglob("*.sources")), Path("/etc/apt/sources.list")]:
        try:
            text = path.read_text()
        except OSError:
            continue
        for line in text.splitlines():
            words = line.split()
            if line.startswith("URIs:") and "security" not in line and len(words) > 1:
                return words[1]
            if line.startswith("deb ") and "/debian" in line and "security" not in line:
                return next(w for w in words[1:] if w.startswith("http"))
    return "http://deb.debian.org/debian"


def _pause_source(workdir: Path) -> bytes:
    """`build/pause/linux/pause.c` from Debian's kubernetes source package."""
    _run(
        ["apt-get", "source", "-qq", "--download-only", "kubernetes"],
        what="apt-get source kubernetes (deb-src must be enabled; `kubedag dev-cluster build` "
        "enables it)",
        cwd=workdir,
    )
    for tarball in workdir.glob("kubernetes_*.orig.tar.*"):
        with tarfile.open(tarball) as archive:
            for member in archive:
                if member.name.endswith("build/pause/linux/pause.c"):
                    extracted = archive.extractfile(member)
                    if extracted is not None:
                        return extracted.read()
    raise ClusterError("pause.c not found in the kubernetes source package")


def _run(argv: list[str], *, what: str, cwd: Path | None = None) -> str:
    if shutil.which(argv[0]) is None:
        raise ClusterError(f"{argv[0]} is not installed")
    result = subprocess.run(
        argv, check=False, capture_output=True, text=True, cwd=cwd, timeout=BUILD_TIMEOUT
    )
    if result.returncode != 0:
        raise ClusterError(
            f"{what} failed (exit {result.returncode}):\n{(result.stderr or result.stdout)[-3000:]}"
        )
    return result.stdout
