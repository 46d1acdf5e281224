"""Every committed manifest is accepted by a real API server (server-side dry run), and
invalid Echo specs are rejected by the CRD schema before the operator ever sees them."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted(
    [*(ROOT / "crd").glob("*.yaml"), *(ROOT / "deploy").glob("*.yaml"), *(ROOT / "deploy" / "samples").glob("*.yaml")]
)
OPERATOR_IDENTITY = "system:serviceaccount:echo-tracing:echo-operator"


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_manifest_passes_server_side_dry_run(kubectl, path):
    result = kubectl.apply(path, dry_run=True)
    applied = [line for line in result.stdout.splitlines() if "(server dry run)" in line]
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert len(applied) == len(documents), result.stdout + result.stderr
    assert "Warning" not in result.stderr, f"the API server warns about {path.name}: {result.stderr}"


def echo(spec, name="invalid"):
    return yaml.safe_dump(
        {
            "apiVersion": "tracing.example.com/v1alpha1",
            "kind": "Echo",
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        }
    )


@pytest.mark.parametrize(
    "spec, complaint",
    [
        ({}, "spec.message: Required value"),
        ({"message": ""}, "spec.message"),
        ({"message": "   "}, "spec.message"),
        ({"message": "x" * 1025}, "spec.message"),
        ({"message": "hi", "delayMs": -1}, "spec.delayMs"),
        ({"message": "hi", "delayMs": 10001}, "spec.delayMs"),
        ({"message": "hi", "failFirst": 11}, "spec.failFirst"),
        ({"message": "hi", "failFirst": "two"}, "spec.failFirst"),
    ],
    ids=["missing", "empty", "blank", "too-long", "negative-delay", "delay-too-long", "too-many-failures", "not-a-number"],
)
def test_api_server_rejects_invalid_spec(kubectl, spec, complaint):
    result = kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=echo(spec), check=False)
    assert result.returncode != 0, f"accepted an invalid spec {spec}: {result.stdout}"
    assert complaint in result.stderr, result.stderr


def test_api_server_accepts_the_boundaries(kubectl):
    spec = {"message": "x" * 1024, "delayMs": 10000, "failFirst": 10}
    result = kubectl.run("apply", "--dry-run=server", "-f", "-", stdin=echo(spec, "boundaries"))
    assert "(server dry run)" in result.stdout


@pytest.mark.parametrize(
    "verb, resource",
    [("list", "echoes.tracing.example.com"), ("watch", "echoes.tracing.example.com"),
     ("patch", "echoes.tracing.example.com"), ("patch", "echoes.tracing.example.com/status"),
     ("create", "events.events.k8s.io"), ("patch", "events.events.k8s.io")],
)
def test_operator_identity_may_do_what_it_needs(kubectl, verb, resource):
    resource, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, resource, "--all-namespaces", "--as", OPERATOR_IDENTITY]
    if sub:
        args += ["--subresource", sub]
    assert kubectl.run(*args, check=False).stdout.strip() == "yes"


# Exactly what deploy/10-rbac.yaml grants; anything more is a regression of least privilege.
OPERATOR_GRANTS = {
    ("echoes.tracing.example.com", "", "", ("list", "patch", "watch")),
    ("echoes.tracing.example.com/status", "", "", ("patch",)),
    ("events.events.k8s.io", "", "", ("create", "patch")),
    # In its own namespace only (a Role), for leader election.
    ("leases.coordination.k8s.io", "", "", ("create",)),
    ("leases.coordination.k8s.io", "", "echo-operator", ("get", "update")),
}


def effective_rules(kubectl, identity, namespace="echo-tracing"):
    """`kubectl auth can-i --list` as `identity`: a set of (resource, non-resource URL,
    resource names, sorted verbs), one per row, read by the columns of the table's header."""
    lines = kubectl.run("auth", "can-i", "--list", "-n", namespace, "--as", identity).stdout.splitlines()
    header = lines[0]
    starts = [header.index(title) for title in ("Resources", "Non-Resource URLs", "Resource Names", "Verbs")]
    rules = set()
    for line in lines[1:]:
        if not line.strip():
            continue
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [len(line)])]
        resource, urls, names, verbs = cells
        rules.add((resource, urls.strip("[]"), names.strip("[]"), tuple(sorted(verbs.strip("[]").split()))))
    return rules


def test_operator_identity_has_exactly_its_grants(kubectl):
    """In the operator's namespace (where its lease Role applies) and in another one."""
    # What any authenticated identity may do (discovery, self reviews) is not the operator's
    # doing: compare against a ServiceAccount with no bindings at all.
    for namespace, expected in [
        ("echo-tracing", OPERATOR_GRANTS),
        ("default", {g for g in OPERATOR_GRANTS if not g[0].startswith("leases.")}),
    ]:
        baseline = effective_rules(kubectl, "system:serviceaccount:echo-tracing:nobody", namespace)
        granted = effective_rules(kubectl, OPERATOR_IDENTITY, namespace) - baseline
        assert granted == expected, f"{namespace}: unexpected grants {sorted(granted ^ expected)}"


@pytest.mark.parametrize(
    "verb, resource",
    [("get", "secrets"), ("delete", "echoes.tracing.example.com"), ("update", "echoes.tracing.example.com"),
     ("create", "pods"), ("create", "events")],
)
def test_operator_identity_is_refused_the_obvious(kubectl, verb, resource):
    args = ["auth", "can-i", verb, resource, "--all-namespaces", "--as", OPERATOR_IDENTITY]
    assert kubectl.run(*args, check=False).stdout.strip() == "no"
