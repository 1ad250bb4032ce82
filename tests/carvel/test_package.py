"""What `make carvel` produces: the bundle, and the one file a VI admin uploads (PackageMetadata +
Package), checked against what kapp-controller requires and against the bundle in the registry."""

from __future__ import annotations

import datetime
import re
import shutil
from pathlib import Path

import yaml

from tests.carvel.conftest import (
    CRD,
    POLICY,
    ROOT,
    SAMPLE_VALUES,
    VERSION,
    Build,
    build_package,
    documents,
    run,
    schema_openapi,
    tool,
)

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
CHANGELOG = ROOT / "CHANGELOG.md"
ALERTS = ROOT / "carvel" / "monitoring" / "alerts.yaml"
DIGEST_REF = re.compile(r"^(?P<repository>[^@\s]+)@(?P<digest>sha256:[0-9a-f]{64})$")


def test_package_file_holds_metadata_and_package(package_build: Build) -> None:
    docs = package_build.package_documents()
    assert set(docs) == {"PackageMetadata", "Package"}
    metadata, package = docs["PackageMetadata"], docs["Package"]
    for doc in (metadata, package):
        assert doc["apiVersion"] == "data.packaging.carvel.dev/v1alpha1"
        assert "namespace" not in doc["metadata"]  # vSphere decides where they go

    ref_name = metadata["metadata"]["name"]
    assert len(ref_name.split(".")) >= 3  # kapp-controller wants a fully qualified name
    meta = metadata["spec"]
    for field in ("displayName", "shortDescription", "longDescription", "providerName"):
        assert isinstance(meta[field], str), field
        assert meta[field].strip(), field
    assert meta["maintainers"]
    assert all(m["name"] for m in meta["maintainers"])
    assert meta["categories"]

    spec = package["spec"]
    assert spec["refName"] == ref_name
    assert spec["version"] == VERSION
    assert SEMVER.match(VERSION)
    assert package["metadata"]["name"] == f"{ref_name}.{VERSION}"
    released = datetime.datetime.fromisoformat(spec["releasedAt"])
    assert released.tzinfo is not None
    assert spec["releasedAt"].endswith("Z")

    template = spec["template"]["spec"]
    (fetch,) = template["fetch"]
    assert DIGEST_REF.match(fetch["imgpkgBundle"]["image"])
    namespace_of_the_install = {"downwardAPI": {"items": [{"name": "namespace", "fieldPath": "metadata.namespace"}]}}
    assert template["template"] == [
        {"ytt": {"paths": ["config/"], "valuesFrom": [namespace_of_the_install]}},
        {"kbld": {"paths": ["-", ".imgpkg/images.yml"]}},
    ]
    assert template["deploy"] == [{"kapp": {}}]
    # what a Supervisor needs, in the fields kapp-controller reads (version ranges) and vSphere shows
    assert spec["kappControllerVersionSelection"] == {"constraints": ">=0.39.0"}  # its downward API
    assert spec["kubernetesVersionSelection"] == {"constraints": ">=1.25.0"}
    assert "vSphere 8.0 Update 3 or later" in meta["longDescription"]


def test_release_notes_are_the_version_s_section_of_the_changelog(package_build: Build) -> None:
    notes = package_build.package_documents()["Package"]["spec"]["releaseNotes"]
    changelog = CHANGELOG.read_text()
    section = changelog.split(f"\n## {VERSION}\n", 1)[1].split("\n## ", 1)[0].strip()
    assert notes == section
    assert "## " not in notes


def test_a_version_without_release_notes_is_not_packaged(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    for part in ("carvel", "crds", "ci"):
        shutil.copytree(ROOT / part, tree / part)
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    (tree / "CHANGELOG.md").write_text("# Changelog\n\n## 0.0.1\n\n- an older version\n")
    env = {"CARVEL_REGISTRY": "registry.example/vmray"}
    result = run("bash", tree / "ci" / "scripts" / "build-carvel.sh", tmp_path / "out", env=env, check=False)
    assert result.returncode != 0
    assert f"CHANGELOG.md has no section '## {VERSION}'" in result.stderr


def test_capacity_requirements_state_the_operator_s_default_resources(package_build: Build) -> None:
    capacity = package_build.package_documents()["Package"]["spec"]["capacityRequirementsDescription"]
    resources = schema_openapi()["properties"]["operator"]["properties"]["resources"]["properties"]
    requests, limits = resources["requests"]["properties"], resources["limits"]["properties"]
    stated = f"requests {requests['cpu']['default']} CPU and {requests['memory']['default']} memory"
    assert stated in capacity
    assert f"limits {limits['cpu']['default']} CPU and {limits['memory']['default']} memory" in capacity


def test_the_alert_rules_dashboards_and_scrape_configs_are_written_beside_the_package(package_build: Build) -> None:
    written = package_build.out / "prometheus-alerts.yaml"
    assert written.read_text() == ALERTS.read_text()
    shipped = {p.name for p in (package_build.out / "monitoring").iterdir()}
    assert shipped == {p.name for p in ALERTS.parent.iterdir() if p.name != ALERTS.name}
    for name in shipped:
        assert (package_build.out / "monitoring" / name).read_text() == (ALERTS.parent / name).read_text()


def test_package_values_schema_is_the_ytt_schema(package_build: Build) -> None:
    package = package_build.package_documents()["Package"]
    assert package["spec"]["valuesSchema"]["openAPIv3"] == schema_openapi()


def test_package_points_at_the_bundle_by_digest(package_build: Build, tmp_path: Path) -> None:
    image = package_build.package_documents()["Package"]["spec"]["template"]["spec"]["fetch"][0]["imgpkgBundle"]
    match = DIGEST_REF.match(image["image"])
    assert match is not None
    assert match["repository"] == f"{package_build.carvel_registry}/vmray-operator-bundle"
    assert match["digest"] == package_build.digest

    # What kapp-controller fetches is exactly the bundle directory the build made.
    pulled = tmp_path / "pulled"
    run(tool("imgpkg"), "pull", "-b", image["image"], "-o", pulled)
    built = sorted(p.relative_to(package_build.bundle) for p in package_build.bundle.rglob("*") if p.is_file())
    assert sorted(p.relative_to(pulled) for p in pulled.rglob("*") if p.is_file()) == built
    for relative in built:
        assert (pulled / relative).read_bytes() == (package_build.bundle / relative).read_bytes(), relative


def test_bundle_holds_the_templates_the_generated_crd_and_policy_and_a_digest_lock(package_build: Build) -> None:
    config = package_build.bundle / "config"
    assert sorted(p.name for p in (config / "crds").iterdir()) == sorted([CRD.name, POLICY.name])
    for generated in (CRD, POLICY):
        assert (config / "crds" / generated.name).read_bytes() == generated.read_bytes()
    lock = yaml.safe_load((package_build.bundle / ".imgpkg" / "images.yml").read_text())
    assert lock["kind"] == "ImagesLock"
    (image,) = lock["images"]
    assert image["annotations"]["kbld.carvel.dev/id"] == "vmray-operator"  # the templates' image name
    repository, digest = image["image"].split("@")
    assert repository == package_build.operator_image.rsplit(":", 1)[0]
    assert digest.startswith("sha256:")
    # The bundle's templates, through kbld with the lock, name the operator image by digest.
    rendered = run(tool("ytt"), "-f", config, "--data-value", "namespace=svc-vmray-domain-c8").stdout
    resolved = documents(
        run(tool("kbld"), "-f", "-", "-f", package_build.bundle / ".imgpkg" / "images.yml", stdin=rendered).stdout
    )
    (deployment,) = [d for d in resolved if d["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image["image"]


def test_sample_values_file_is_written(package_build: Build) -> None:
    assert (package_build.out / "values-sample.yaml").read_text() == SAMPLE_VALUES.read_text()


def test_bundle_digest_is_reproducible(package_build: Build, tmp_path: Path) -> None:
    again = build_package(tmp_path / "again", package_build.registry, package_build.operator_image, push=False)
    assert again.digest == package_build.digest
