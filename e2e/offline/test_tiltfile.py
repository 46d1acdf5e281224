"""The Tiltfile, evaluated offline: what it builds is deployed, what it names exists."""

import re
from pathlib import Path

import pytest

from offline.tiltfile_eval import ROOT, TiltfileFailed, evaluate


def containers(obj):
    spec = obj.get("spec", {}).get("template", {}).get("spec", {})
    return spec.get("containers", []) + spec.get("initContainers", [])


def image_name(image):
    """`repo/name:tag@digest` -> `repo/name`."""
    return re.sub(r"(@.*)?$", "", image).rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image


@pytest.fixture(scope="module")
def rec():
    return evaluate()


def test_every_built_image_is_used_by_an_applied_manifest(rec):
    used = {image_name(c["image"]) for o in rec.objects for c in containers(o)}
    built = {b["ref"] for b in rec.images}
    assert built, "the Tiltfile builds images"
    assert built <= used, f"built but never deployed: {built - used}"


def test_every_local_image_is_built(rec):
    # Images without a registry host are ours; everything else is pulled.
    used = {image_name(c["image"]) for o in rec.objects for c in containers(o)}
    ours = {i for i in used if "/" not in i}
    assert ours <= {b["ref"] for b in rec.images}, f"deployed but never built: {ours}"


def test_every_named_file_exists(rec):
    for build in rec.images:
        assert (ROOT / build["context"]).is_dir()
        assert (ROOT / build.get("dockerfile", "Dockerfile")).is_file()
        for path in build.get("only", []):
            assert (ROOT / path).exists(), f"docker_build only= names missing {path}"
        target = build.get("target")
        if target:
            dockerfile = (ROOT / build.get("dockerfile", "Dockerfile")).read_text()
            assert re.search(rf"^FROM .* AS {re.escape(target)}$", dockerfile, re.M), f"no stage {target}"
    for path in rec.yaml_files:
        assert Path(path).is_file()
    for name, res in rec.local_resources.items():
        for ref in re.findall(r"(?:-f|--filename)\s+(\S+)", res.get("cmd", "")):
            assert (ROOT / ref).exists(), f"{name} applies missing {ref}"


def test_crd_and_every_deploy_manifest_are_applied(rec):
    applied = {Path(p).resolve() for p in rec.yaml_files}
    expected = {p.resolve() for p in (ROOT / "crd").glob("*.yaml")}
    expected |= {p.resolve() for p in (ROOT / "deploy").glob("*.yaml")}
    assert applied == expected


def test_jaeger_ui_is_port_forwarded(rec):
    jaeger = rec.resources["jaeger"]
    assert "16686:16686" in jaeger["port_forwards"]
    services = [o for o in rec.objects if o["kind"] == "Service" and o["metadata"]["name"] == "jaeger"]
    assert services and any(p["port"] == 16686 for p in services[0]["spec"]["ports"])


def test_resources_name_real_workloads_and_objects(rec):
    workloads = {o["metadata"]["name"] for o in rec.objects if o["kind"] == "Deployment"}
    ids = {f'{o["metadata"]["name"]}:{o["kind"].lower()}' for o in rec.objects}
    for name, res in rec.resources.items():
        if res["workload"]:
            assert res["workload"] in workloads, f"k8s_resource {name} names no Deployment"
        for obj in res.get("objects", []):
            assert obj in ids, f"k8s_resource {name} names missing object {obj}"
    known = set(rec.resources) | set(rec.local_resources)
    for name, res in {**rec.resources, **rec.local_resources}.items():
        for dep in res.get("resource_deps", []):
            assert dep in known, f"{name} depends on unknown resource {dep}"


def test_operator_starts_after_crd_jaeger_and_echo_server(rec):
    deps = set(rec.resources["echo-operator"]["resource_deps"])
    assert {"echo-crd", "jaeger", "echo-server"} <= deps


def test_samples_are_one_click_and_applied_by_tilt_ci(rec):
    samples = rec.local_resources["samples"]
    assert samples["trigger_mode"] == "manual"
    assert samples["auto_init"] is False
    assert "deploy/samples/" in samples["cmd"]
    assert evaluate(subcommand="ci").local_resources["samples"]["auto_init"] is True


@pytest.mark.parametrize("context", ["gke_prod_europe-west1_main", "arn:aws:eks:us-east-1:1:cluster/x", "docker-desktop"])
def test_refuses_non_kind_contexts(context):
    with pytest.raises(TiltfileFailed, match="refusing to deploy"):
        evaluate(context=context)
