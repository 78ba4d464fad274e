"""Build the api and worker images with podman (or docker), optionally from a local Debian base.

No image registry is reachable from our machines and CI, so `--base local` makes the base image
here: a debootstrapped Debian bookworm rootfs (cached as a tarball under .cache/images/) imported
into podman, plus Python from Debian. Elsewhere pass an official image, e.g.
`--base docker.io/library/python:3.11-slim-bookworm`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache" / "images"
ROOTFS_TARBALL = CACHE_DIR / "debian-bookworm-minbase.tar"
DEBIAN_IMAGE = "localhost/kubetasks-debian:bookworm"
LOCAL_BASE_IMAGE = "localhost/kubetasks-python:bookworm"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
IMAGES = ("api", "worker")

# crun refuses this machine's cgroups and the default rlimits fail under runc (TOOLING.md).
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
"""

PYTHON_BASE_CONTAINERFILE = f"""\
FROM {DEBIAN_IMAGE}
RUN apt-get update \\
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
"""


def engine() -> str:
    for candidate in ("podman", "docker"):
        if shutil.which(candidate):
            return candidate
    raise SystemExit("neither podman nor docker is installed")


def engine_env() -> dict[str, str]:
    """Environment for podman: our containers.conf unless the caller brought one."""
    env = dict(os.environ)
    if "CONTAINERS_CONF" not in env:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        conf = CACHE_DIR / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        env["CONTAINERS_CONF"] = str(conf)
    return env


def run(cmd: Sequence[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=engine_env())


def image_exists(tool: str, ref: str) -> bool:
    probe = [tool, "image", "inspect", ref]
    return subprocess.run(probe, capture_output=True, env=engine_env()).returncode == 0


def debian_mirror() -> str:
    """The URIs: line of the deb822 sources, which points at the mirror this machine can reach."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:"):
                return line.split(":", 1)[1].strip().split()[0]
    return DEFAULT_MIRROR


def ensure_rootfs_tarball() -> Path:
    if ROOTFS_TARBALL.exists():
        return ROOTFS_TARBALL
    if not shutil.which("debootstrap"):
        raise SystemExit("debootstrap is not installed (apt-get install -y debootstrap)")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE_DIR) as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), debian_mirror()])
        partial = ROOTFS_TARBALL.with_suffix(".partial")
        run(["tar", "-C", str(rootfs), "-cf", str(partial), "."])
        partial.replace(ROOTFS_TARBALL)
    return ROOTFS_TARBALL


def ensure_local_base(tool: str) -> str:
    """Debian bookworm + python3 from Debian, built once and reused."""
    if image_exists(tool, LOCAL_BASE_IMAGE):
        return LOCAL_BASE_IMAGE
    if not image_exists(tool, DEBIAN_IMAGE):
        tarball = ensure_rootfs_tarball()
        run([tool, "import", str(tarball), DEBIAN_IMAGE])
    with tempfile.TemporaryDirectory() as context:
        (Path(context) / "Containerfile").write_text(PYTHON_BASE_CONTAINERFILE)
        run([tool, "build", "--network", "host", "-t", LOCAL_BASE_IMAGE, context])
    return LOCAL_BASE_IMAGE


def build_context(tool: str, dockerfile: Path, context: Path, ref: str, **args: str) -> str:
    """Build `ref` from a Dockerfile with build arguments; returns `ref`."""
    cmd = [tool, "build", "--network", "host", "-f", str(dockerfile), "-t", ref]
    for key, value in args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    if HOST_CA_BUNDLE.exists():
        # This network intercepts TLS: pip inside the build trusts the host's CA bundle.
        cmd += ["-v", f"{HOST_CA_BUNDLE}:/run/host-ca.crt:ro"]
        cmd += ["--build-arg", "PIP_CERT=/run/host-ca.crt"]
    run([*cmd, str(context)])
    return ref


def build(tool: str, name: str, base_image: str, tag: str) -> str:
    dockerfile = REPO_ROOT / f"Dockerfile.{name}"
    ref = f"localhost/kubetasks-{name}:{tag}"
    return build_context(tool, dockerfile, REPO_ROOT, ref, BASE_IMAGE=base_image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", metavar="{api,worker}", help="default: both")
    parser.add_argument(
        "--base", default="local", help="'local' (debootstrap) or a base image with Python 3.11"
    )
    parser.add_argument("--tag", default="dev")
    args = parser.parse_args()
    unknown = set(args.images) - set(IMAGES)
    if unknown:
        parser.error(f"unknown images: {sorted(unknown)}")
    tool = engine()
    base_image = ensure_local_base(tool) if args.base == "local" else args.base
    for name in args.images or IMAGES:
        print(build(tool, name, base_image, args.tag))


if __name__ == "__main__":
    main()
