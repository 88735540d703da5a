"""scripts/build_image.py's own decisions, without building (tests/test_container.py builds)."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness.processes import ROOT

pytestmark = pytest.mark.unit  # tier: no `bentoml serve` (pytest.ini)

spec = importlib.util.spec_from_file_location("build_image", ROOT / "scripts" / "build_image.py")
build_image = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_image)

PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


@pytest.fixture
def build_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    # the variant files are written under the repository (bentoml resolves them from there)
    target = ROOT / "build" / "image-test" / tmp_path.name
    target.mkdir(parents=True)
    monkeypatch.setattr(build_image, "BUILD_DIR", target)
    yield target
    shutil.rmtree(target, ignore_errors=True)


def wheelhouse(tmp_path: Path, *names: str) -> Path:
    folder = tmp_path / "wheels"
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"")
    return folder


def test_only_wheels_of_pinned_requirements_are_mounted(build_dir: Path, tmp_path: Path) -> None:
    folder = wheelhouse(tmp_path, "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", "numpy-2.0.0-cp311-none-any.whl")
    wheels, build_args = build_image.prepare_inputs(folder, None)
    assert [w.name.split("-")[0] for w in wheels] == ["torch"]
    assert sorted(p.name for p in (build_dir / "inputs" / "wheels").iterdir()) == [wheels[0].name]
    assert build_args == []


def test_a_wheelhouse_without_a_pinned_wheel_is_an_error(build_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no wheel of a pinned requirement"):
        build_image.prepare_inputs(wheelhouse(tmp_path, "numpy-2.0.0-cp311-none-any.whl"), None)


def test_extra_ca_is_added_to_the_public_roots_for_the_build_only(build_dir: Path, tmp_path: Path) -> None:
    ca = tmp_path / "corp.pem"
    ca.write_text(PEM)
    _, build_args = build_image.prepare_inputs(None, ca)
    bundle = (build_dir / "inputs" / "ca-bundle.pem").read_text()
    assert bundle.endswith(PEM) and bundle.count("BEGIN CERTIFICATE") > 50  # public roots kept
    assert build_args == ["SSL_CERT_FILE=/run/build-inputs/ca-bundle.pem", "PIP_CERT=/run/build-inputs/ca-bundle.pem"]

    not_pem = tmp_path / "key.txt"
    not_pem.write_text("hello")
    with pytest.raises(SystemExit, match="no PEM certificate"):
        build_image.prepare_inputs(None, not_pem)


def test_wheelhouse_bentofile_resolves_local_wheels(build_dir: Path, tmp_path: Path) -> None:
    original = yaml.safe_load((ROOT / "bentofile.yaml").read_text())
    assert "extra_index_url" in original["python"]

    path = build_image.variant_bentofile([tmp_path / "torch-2.13.0+cpu-x.whl"])
    variant = yaml.safe_load(path.read_text())
    assert "extra_index_url" not in variant["python"]  # PyTorch's index is unreachable where a wheelhouse is used
    requirements = (ROOT / variant["python"]["requirements_txt"]).read_text().splitlines()
    assert "--find-links /run/build-inputs/wheels" in requirements and "torch==2.13.0+cpu" in requirements
    # everything else is the project's bentofile, the lean Dockerfile template included
    for key in ("service", "include", "exclude", "models", "envs", "docker"):
        assert variant[key] == original[key]
    assert (ROOT / original["docker"]["dockerfile_template"]).is_file()


def test_bind_mount_options_need_podman_or_buildah(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="buildah or podman"):
        build_image.main(["--backend", "docker", "--wheelhouse", str(tmp_path)])
