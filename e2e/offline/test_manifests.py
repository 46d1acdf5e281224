"""Offline validation of everything under crd/ and deploy/, and of the Dockerfile."""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from bench.programs import OPERATOR_EXPORT_BATCH, telemetry_env
from lib import render

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES_VERSION = "1.37.0"
MANIFESTS = sorted((ROOT / "crd").glob("*.yaml")) + sorted((ROOT / "deploy").glob("*.yaml"))
SAMPLES = sorted((ROOT / "deploy" / "samples").glob("*.yaml"))


def docs(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def all_objects():
    return [d for p in MANIFESTS for d in docs(p)]


def pod_specs():
    for obj in all_objects():
        if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_strict_schema_validation(path):
    for doc in docs(path):
        # Raises ValidationError (unknown fields too, in strict mode) on any problem.
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def crd_schema():
    crd = docs(ROOT / "crd" / "echo.yaml")[0]
    return openapi_to_jsonschema(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])


def openapi_to_jsonschema(node):
    """OpenAPI v3's `nullable` becomes a JSON Schema type union; x-kubernetes-* are ignored."""
    if isinstance(node, dict):
        out = {k: openapi_to_jsonschema(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
        if out.pop("nullable", False) and "type" in out:
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [openapi_to_jsonschema(v) for v in node]
    return node


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_samples_match_the_crd(path):
    schema = crd_schema()
    for doc in docs(path):
        assert doc["apiVersion"] == "tracing.example.com/v1alpha1" and doc["kind"] == "Echo"
        jsonschema.validate(doc, schema)


def test_samples_cover_plain_slow_and_flaky():
    specs = [d["spec"] for p in SAMPLES for d in docs(p)]
    assert any("delayMs" not in s and "failFirst" not in s for s in specs)
    assert any(s.get("delayMs", 0) > 0 for s in specs)
    assert any(s.get("failFirst", 0) > 0 for s in specs)


@pytest.mark.parametrize(
    "spec",
    [{}, {"message": ""}, {"message": "x" * 1025}, {"message": "m", "delayMs": 10001},
     {"message": "m", "delayMs": -1}, {"message": "m", "failFirst": 11}, {"message": 3}],
)
def test_crd_schema_rejects_invalid_specs(spec):
    doc = {"apiVersion": "tracing.example.com/v1alpha1", "kind": "Echo", "metadata": {"name": "x"}, "spec": spec}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, crd_schema())


@pytest.mark.parametrize("name,spec", list(pod_specs()), ids=lambda v: v if isinstance(v, str) else "")
def test_pods_are_hardened(name, spec):
    pod = spec.get("securityContext", {})
    assert pod.get("runAsNonRoot") is True, name
    assert pod.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
    for c in spec["containers"]:
        sc = c.get("securityContext", {})
        assert sc.get("allowPrivilegeEscalation") is False, c["name"]
        assert sc.get("readOnlyRootFilesystem") is True, c["name"]
        assert sc.get("capabilities", {}).get("drop") == ["ALL"], c["name"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(c.get("resources", {}).get(kind, {})), f"{c['name']} {kind}"
        assert "readinessProbe" in c and "livenessProbe" in c, c["name"]


@pytest.mark.parametrize("name", ["echo-operator", "echo-server"])
def test_telemetry_comes_from_standard_variables_and_the_downward_api(name):
    spec = dict(pod_specs())[name]
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["OTEL_SERVICE_NAME"]["value"] == name
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"].startswith("http://jaeger.echo-tracing.svc:")
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] in ("grpc", "http/protobuf")
    attrs = env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    for attribute, var, field in [
        ("k8s.pod.name", "POD_NAME", "metadata.name"),
        ("k8s.namespace.name", "POD_NAMESPACE", "metadata.namespace"),
        ("k8s.node.name", "NODE_NAME", "spec.nodeName"),
    ]:
        assert f"{attribute}=$({var})" in attrs
        assert env[var]["valueFrom"]["fieldRef"]["fieldPath"] == field


def test_rbac_has_no_wildcards_and_binds_the_operator():
    objects = all_objects()
    role = next(o for o in objects if o["kind"] == "ClusterRole")
    for rule in role["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule
    binding = next(o for o in objects if o["kind"] == "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    operator = dict(pod_specs())["echo-operator"]
    sa = binding["subjects"][0]
    assert (sa["name"], sa["namespace"]) == (operator["serviceAccountName"], "echo-tracing")


def test_only_the_operator_reaches_the_echo_api_and_scrapes_reach_the_metrics_port():
    objects = all_objects()
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "echo-server")
    pod = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "echo-server")
    template = pod["spec"]["template"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= template["metadata"]["labels"].items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    container = template["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    rules = {r["ports"][0]["port"]: r.get("from") for r in policy["spec"]["ingress"]}
    operator = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "echo-operator")
    operator_labels = operator["spec"]["template"]["metadata"]["labels"]
    # The API port: only pods carrying the operator's labels.
    (source,) = rules[ports["http"]]
    assert source["podSelector"]["matchLabels"].items() <= operator_labels.items() and "namespaceSelector" not in source
    # The metrics port, which the scrape annotation names, from anywhere; nothing else is open.
    assert rules[ports["metrics"]] is None and set(rules) == {ports["http"], ports["metrics"]}
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])
    assert f"0.0.0.0:{ports['metrics']}" in container["args"]


def test_echo_server_probes_use_a_port_the_network_policy_opens_to_the_kubelet():
    """The kubelet's probes come from the node, not from the operator's pods: a network plugin
    that enforces the policy for node traffic too would fail probes on the API port."""
    objects = all_objects()
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "echo-server")
    open_to_all = {r["ports"][0]["port"] for r in policy["spec"]["ingress"] if r.get("from") is None}
    pod = next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "echo-server")
    container = pod["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("readinessProbe", "livenessProbe"):
        port = container[probe]["httpGet"]["port"]
        assert ports.get(port, port) in open_to_all, f"{probe} uses port {port}, closed to the kubelet"


def test_kind_tracing_points_at_the_jaeger_service():
    kind = docs(ROOT / "deploy" / "kind" / "cluster.yaml")[0]
    tracing = docs(ROOT / "deploy" / "kind" / "apiserver-tracing.yaml")[0]
    service = next(o for o in all_objects() if o["kind"] == "Service" and o["metadata"]["name"] == "jaeger")
    grpc = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "otlp-grpc")
    assert tracing["endpoint"] == f'{service["spec"]["clusterIP"]}:{grpc}'
    mount = kind["nodes"][0]["extraMounts"][0]
    assert (ROOT / mount["hostPath"]).is_file()
    assert mount["containerPath"] in kind["nodes"][0]["kubeadmConfigPatches"][0]


def test_jaeger_config_parses_and_wires_otlp_to_storage():
    cm = next(o for o in all_objects() if o["kind"] == "ConfigMap" and o["metadata"]["name"] == "jaeger-config")
    config = yaml.safe_load(cm["data"]["config.yaml"])
    pipeline = config["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert config["exporters"]["jaeger_storage_exporter"]["trace_storage"] in config["extensions"]["jaeger_storage"]["backends"]
    # Tail sampling runs in the traces pipeline, before the batch, and keeps every error.
    assert pipeline["processors"][0] == "tail_sampling", pipeline
    assert "tail_sampling" in config["processors"]
    sampling = config["processors"]["tail_sampling"]
    policies = {p["type"]: p for p in sampling["policies"]}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"], policies
    assert policies["latency"]["latency"]["threshold_ms"] == 2000, policies
    changed = [c for p in sampling["policies"] if p["type"] == "ottl_condition" for c in p["ottl_condition"]["span"]]
    assert any('echo_operator.reconcile.writes"] != "none"' in c for c in changed), changed
    assert policies["probabilistic"]["probabilistic"]["sampling_percentage"] == "${env:JAEGER_TAIL_SAMPLING_PERCENT:-5}"
    assert sampling["decision_wait"] == "2s", "the demo's traces appear within seconds of Ready"


def test_the_benchmarks_jaeger_has_no_tail_sampling():
    """e2e/bench/run renders the same config without the processor: the benchmark's latency
    must not include the decision wait."""
    config = yaml.safe_load(render.jaeger_config(tail_sampling=False))
    assert "tail_sampling" not in config["service"]["pipelines"]["traces"]["processors"]
    assert "tail_sampling" not in config["processors"]
    assert "E2E_JAEGER_TAIL_SAMPLING=0" in (ROOT / "e2e" / "bench" / "run").read_text()


def test_the_benchmark_and_the_harness_run_the_operator_with_deploys_batch_settings():
    """make bench and the e2e harness measure and test the operator as deploy/ ships it: the
    same schedule delay and spans per export (the export batch sets its peak memory)."""
    deployed = {e["name"]: e.get("value") for e in dict(pod_specs())["echo-operator"]["containers"][0]["env"]}
    benched = telemetry_env("B", "127.0.0.1:4317", "grpc", 9, OPERATOR_EXPORT_BATCH)
    # e2e/up starts the operator with the only gRPC exporter among its programs.
    harness = [line for line in (ROOT / "e2e" / "up").read_text().splitlines()
               if "OTEL_EXPORTER_OTLP_PROTOCOL=grpc" in line]
    assert len(harness) == 1, harness
    for name in ("OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"):
        assert deployed.get(name), f"deploy/ sets no {name} for the operator"
        assert benched.get(name) == deployed[name], name
        assert f"{name}={deployed[name]}" in harness[0].split(), name


def test_the_scale_benchmarks_jaeger_has_room_and_keeps_the_rest():
    """The benchmark at scale checks every trace of 10,000 objects: its Jaeger keeps more in
    memory than deploy/'s, and nothing else in the configuration changes."""
    plain = yaml.safe_load(render.jaeger_config(tail_sampling=False))
    sized = yaml.safe_load(render.jaeger_config(tail_sampling=False, max_traces=250_000))
    backends = sized["extensions"]["jaeger_storage"]["backends"]
    assert [b["memory"]["max_traces"] for b in backends.values()] == [250_000] * len(backends)
    for backend in backends.values():
        backend["memory"]["max_traces"] = None
    for backend in plain["extensions"]["jaeger_storage"]["backends"].values():
        backend["memory"]["max_traces"] = None
    assert sized == plain


def test_dockerfile_passes_hadolint():
    # The venv's bin directory is not on PATH when pytest runs as target/venv/bin/python.
    hadolint = shutil.which("hadolint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    assert hadolint, "hadolint is not installed: pip install -r e2e/requirements.txt"
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_dockerignore_keeps_target_out():
    lines = (ROOT / ".dockerignore").read_text().split()
    assert "*" in lines and "!target" not in " ".join(lines)


def image_build_context():
    """What each description of the image's build context lets in: .dockerignore's allowlist,
    the build stage's COPY lines, the Tiltfile's `only`."""
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().split() if line.startswith("!")}
    copied = set()
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            copied.update(source.rstrip("/") for source in line.split()[1:-1])
    tilt = re.search(r"RUST_SOURCES = \[([^\]]*)\]", (ROOT / "Tiltfile").read_text())
    assert tilt, "the Tiltfile names its build context in RUST_SOURCES"
    return allowed, copied, set(re.findall(r"'([^']+)'", tilt.group(1)))


def test_the_image_build_context_holds_every_target_cargo_declares():
    """cargo reads every declared target of the manifest, even for `--bin`: a [[bench]] whose
    file is left out of the context fails the image build (Tilt's, in the kind mode too)."""
    manifest = tomllib.loads((ROOT / "Cargo.toml").read_text())
    needed = {"Cargo.toml", "Cargo.lock", "src"}
    for kind, folder in (("bin", "src/bin"), ("bench", "benches"), ("test", "tests"), ("example", "examples")):
        for target in manifest.get(kind, []):
            needed.add((target.get("path") or f"{folder}/{target['name']}.rs").split("/")[0])
    allowed, copied, tilt = image_build_context()
    assert allowed == needed, f".dockerignore lets in {sorted(allowed)}, the build needs {sorted(needed)}"
    assert copied == needed, f"the Dockerfile copies {sorted(copied)}, the build needs {sorted(needed)}"
    assert tilt == needed, f"the Tiltfile's only= holds {sorted(tilt)}, the build needs {sorted(needed)}"
