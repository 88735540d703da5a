"""Build the service's OCI image: `bentoml build` then `bentoml containerize`.

On a machine with a registry and PyPI/PyTorch access this is exactly

    bentoml build && bentoml containerize sentiment:latest -t sentiment:dev

The options cover the cases BentoML's defaults do not:

  --variant V      auto (default: the torch-free image when ENGINE=auto PRECISION=auto
                   serve OpenVINO for the model, else the full one; the build says which
                   and why), full (every engine) or openvino (no torch: serves the model's
                   OpenVINO export; about half the size): the IMAGE_VARIANT build
                   argument of deployment/image/Dockerfile.template
  --standin-base   no registry: build a local stand-in for the base image first
                   (scripts/standin_images.sh; once per machine)
  --wheelhouse D   torch's CPU build cannot be downloaded in the build: install it from
                   the wheels in D (e.g. `pip download torch==2.13.0+cpu --no-deps -d D`)
  --extra-ca F     a TLS-intercepting proxy: pip and uv in the build trust the CA
                   certificates in F as well as the public ones (also EXTRA_CA_BUNDLE)

The wheelhouse and the CA bundle reach the build as a read-only bind mount
(/run/build-inputs) and build arguments, so they are not copied into the image; both
need the podman or buildah backend. Hosts where podman's default runtime fails: export
CONTAINERS_CONF=scripts/containers.conf.

    .venv/bin/python scripts/build_image.py -t sentiment:dev [--backend buildah] ...
Prints the image tag last.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import certifi
import yaml

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "build" / "image"
INPUTS_IN_BUILD = "/run/build-inputs"  # where the bind mount appears in the RUN steps
BENTOML = [sys.executable, "-m", "bentoml"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-t", "--tag", default=os.environ.get("IMAGE_TAG", "sentiment:dev"), help="image tag")
    parser.add_argument("--backend", default=os.environ.get("CONTAINER_BACKEND"), choices=["buildah", "podman", "docker"],
                        help="bentoml containerize backend (default: buildah, else podman, else docker)")
    parser.add_argument("--variant", default=os.environ.get("IMAGE_VARIANT", "auto"), choices=["auto", "full", "openvino"],
                        help="auto: the torch-free image when auto serves OpenVINO; full: every engine; openvino: no torch")
    parser.add_argument("--bento", help="containerize this Bento instead of building one")
    parser.add_argument("--standin-base", action="store_true", help="build a local stand-in for the base image if absent")
    parser.add_argument("--wheelhouse", type=Path, help="install torch (and any other pinned wheel found here) from this folder")
    parser.add_argument("--extra-ca", type=Path, default=os.environ.get("EXTRA_CA_BUNDLE") or None,
                        help="PEM file of extra CA certificates the build must trust")
    return parser.parse_args(argv)


def pick_backend(requested: str | None) -> str:
    if requested:
        return requested
    for backend in ("buildah", "podman", "docker"):
        if shutil.which(backend):
            return backend
    raise SystemExit("build_image: no container builder found (install buildah or podman)")


def pinned_names(requirements: Path) -> set[str]:
    names = set()
    for line in requirements.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)\s*==", line.strip())
        if match:
            names.add(canonical(match.group(1)))
    return names


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def variant_bentofile(wheels: list[Path]) -> Path:
    """bentofile.yaml adapted to a local wheelhouse: packages with a local wheel resolve
    from the mount instead of PyTorch's index (unreachable where a wheelhouse is needed)."""
    config = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    python = config["python"]
    python.pop("extra_index_url", None)
    requirements = BUILD_DIR / "requirements.txt"
    requirements.write_text(
        "# requirements.txt, with the local wheelhouse\n"
        f"--find-links {INPUTS_IN_BUILD}/wheels\n" + (ROOT / python["requirements_txt"]).read_text()
    )
    python["requirements_txt"] = "./" + str(requirements.relative_to(ROOT))
    path = BUILD_DIR / "bentofile.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def build_bento(bentofile: Path | None) -> str:
    cmd = [*BENTOML, "build", "-o", "tag"]
    if bentofile is not None:
        cmd += ["-f", str(bentofile)]
    out = subprocess.run([*cmd, str(ROOT)], cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
    return out.strip().splitlines()[-1].removeprefix("__tag__:")


def prepare_inputs(wheelhouse: Path | None, extra_ca: Path | None) -> tuple[list[Path], list[str]]:
    """Fill build/image/inputs (mounted into the build); return the wheels and build args."""
    inputs = BUILD_DIR / "inputs"
    shutil.rmtree(inputs, ignore_errors=True)
    inputs.mkdir(parents=True)
    wheels: list[Path] = []
    build_args: list[str] = []
    if wheelhouse is not None:
        wanted = pinned_names(ROOT / "requirements.txt")
        (inputs / "wheels").mkdir()
        for wheel in sorted(wheelhouse.glob("*.whl")):
            if canonical(wheel.name.split("-")[0]) in wanted:
                shutil.copy2(wheel, inputs / "wheels" / wheel.name)
                wheels.append(wheel)
        if not wheels:
            raise SystemExit(f"build_image: no wheel of a pinned requirement in {wheelhouse}")
    if extra_ca is not None:
        if "BEGIN CERTIFICATE" not in extra_ca.read_text(errors="replace"):
            raise SystemExit(f"build_image: {extra_ca} holds no PEM certificate")
        # uv and pip read one file: the public roots plus the extra certificates
        bundle = Path(certifi.where()).read_text() + "\n" + extra_ca.read_text()
        (inputs / "ca-bundle.pem").write_text(bundle)
        build_args += [f"SSL_CERT_FILE={INPUTS_IN_BUILD}/ca-bundle.pem", f"PIP_CERT={INPUTS_IN_BUILD}/ca-bundle.pem"]
    return wheels, build_args


def chosen_variant(bento: str, asked: str) -> tuple[str, str]:
    """The image variant the build makes of `bento`, and why (deployment/image/Dockerfile.template decides the same)."""
    if asked != "auto":
        return asked, f"IMAGE_VARIANT={asked} asked for"
    out = subprocess.run(
        [sys.executable, "-c", "import bentoml, sys; print(bentoml.get(sys.argv[1]).path)", bento],
        capture_output=True, text=True, check=True,
    ).stdout.strip().splitlines()[-1]
    sys.path.insert(0, str(ROOT))
    from sentiment.store.image_variant import variant_of_bento

    return variant_of_bento(Path(out) / "models")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backend = pick_backend(args.backend)
    if (args.wheelhouse or args.extra_ca) and backend == "docker":
        raise SystemExit("build_image: --wheelhouse/--extra-ca need a bind mount in the build: use --backend buildah or podman")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)

    if args.standin_base:
        subprocess.run(["bash", str(ROOT / "scripts" / "standin_images.sh")], check=True)

    wheels, build_args = prepare_inputs(args.wheelhouse, args.extra_ca)
    mount_inputs = bool(wheels or build_args)
    bento = args.bento or build_bento(variant_bentofile(wheels) if wheels else None)
    build_args.append(f"IMAGE_VARIANT={args.variant}")
    variant, why = chosen_variant(bento, args.variant)
    print(f"image variant: {variant}: {why}", file=sys.stderr)  # what the build's chooser stage decides too
    print(f"build_image: containerizing {bento} ({variant} image) as {args.tag} with {backend}", file=sys.stderr)

    cmd = [*BENTOML, "containerize", bento, "-t", args.tag, "--backend", backend]
    if backend in ("buildah", "podman"):
        cmd += ["--opt", "layers"]  # reuse unchanged steps (the Python environment) on rebuilds
    if mount_inputs:
        cmd += ["--opt", f"volume={BUILD_DIR / 'inputs'}:{INPUTS_IN_BUILD}:ro"]
    for build_arg in build_args:
        cmd += ["--opt", f"build-arg={build_arg}"]
    # BentoML 1.4.39 rejects a Dockerfile template outside the working directory, and
    # containerize copies the Bento to a temporary folder (bentoml/BentoML#5566): keep that
    # folder under the working directory.
    scratch = BUILD_DIR / "tmp"
    scratch.mkdir(exist_ok=True)
    subprocess.run(cmd, cwd=scratch, env={**os.environ, "TMPDIR": str(scratch)}, check=True)
    print(args.tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
