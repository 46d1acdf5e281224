"""The Tiltfile as Tilt itself reads it: `tilt alpha tiltfile-result` of Tilt v0.37.6 (built
from ../shared/tools/tilt by `e2e/lib/build-tools --kind`), in a kind context and outside one.
The kubeconfig points at a port where nothing listens: reading the Tiltfile must not need the
cluster. What `tilt ci` and `tilt up` then do with a real kind cluster is the kind mode's part
(e2e/kind/run, docs/kind-mode.md)."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TILT = Path(os.environ.get("TILT", ROOT / "target" / "e2e-bin" / "tilt"))
# Tilt's TriggerMode values (internal/../model/trigger_mode.go): 0 runs on every change,
# 2 only when triggered (a button in the UI, `tilt trigger`).
TRIGGER_AUTO, TRIGGER_MANUAL = 0, 2


def tiltfile_result(tmp_path, context):
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": context,
        "clusters": [{"name": context, "cluster": {"server": "https://127.0.0.1:1"}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "users": [{"name": context, "user": {"token": "unused"}}],
    }
    kubeconfig = tmp_path / f"{context}.yaml"
    kubeconfig.write_text(yaml.safe_dump(config))
    if not TILT.exists():
        pytest.fail(f"no Tilt binary at {TILT}: run e2e/lib/build-tools --kind (make tilt-check does)")
    return subprocess.run([str(TILT), "alpha", "tiltfile-result"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, KUBECONFIG=str(kubeconfig)))


@pytest.fixture(scope="module")
def manifests(tmp_path_factory):
    run = tiltfile_result(tmp_path_factory.mktemp("kubeconfig"), "kind-echo-tracing")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["Error"] is None, result["Error"]
    return {m["Name"]: m for m in result["Manifests"]}


def test_tilt_reads_every_resource_of_the_tiltfile(manifests):
    assert set(manifests) == {"cluster-setup", "echo-crd", "jaeger", "echo-server", "echo-operator", "samples",
                              "delete-samples"}


def test_the_operator_starts_after_what_it_needs_and_the_samples_after_it(manifests):
    def deps(name):
        return set(manifests[name].get("ResourceDependencies") or [])

    assert {"echo-crd", "cluster-setup", "jaeger", "echo-server"} <= deps("echo-operator")
    assert {"cluster-setup", "jaeger"} <= deps("echo-server")
    assert deps("samples") == deps("delete-samples") == {"echo-operator"}


def test_samples_are_buttons_and_the_rest_deploys_by_itself(manifests):
    modes = {name: m["TriggerMode"] for name, m in manifests.items()}
    assert modes.pop("samples") == modes.pop("delete-samples") == TRIGGER_MANUAL
    assert set(modes.values()) == {TRIGGER_AUTO}, modes


def test_both_images_are_built_from_the_dockerfiles_targets_with_only_the_rust_sources(manifests):
    dockerignore = [line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().split()
                    if line.startswith("!")]
    for resource, target in (("echo-server", "echo-server"), ("echo-operator", "operator")):
        (image,) = manifests[resource]["ImageTargets"]
        build = image["BuildDetails"]
        assert build["target"] == target
        assert Path(build["context"]) == ROOT
        assert build["dockerfileContents"] == (ROOT / "Dockerfile").read_text()
        # Tilt applies `only` ("ignore everything but") and .dockerignore, each as a list of
        # patterns; a file reaches the build only if both let it in: both must list the same.
        lists = [ignore["patterns"] for ignore in build["contextIgnores"] if ignore.get("patterns")]
        assert len(lists) == 2, build["contextIgnores"]
        for patterns in lists:
            let_in = {p[1:] for p in patterns if p.startswith("!")}
            assert let_in == set(dockerignore), (patterns, dockerignore)


def test_tilt_refuses_a_context_that_is_not_kind(tmp_path):
    run = tiltfile_result(tmp_path, "prod-cluster")
    assert run.returncode != 0
    assert 'refusing to deploy to context "prod-cluster"' in run.stderr, run.stderr
