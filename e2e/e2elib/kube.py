"""kubectl, driven from the tests: the same tool and kubeconfig a person would use."""

import contextlib
import json
import secrets
import subprocess

from e2elib.polling import eventually


class KubectlError(Exception):
    pass


class Kubectl:
    def __init__(self, binary, kubeconfig=None):
        self.base = [binary] + (["--kubeconfig", kubeconfig] if kubeconfig else [])

    def run(self, *args, stdin=None, check=True):
        result = subprocess.run(self.base + list(args), input=stdin, capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result

    def json(self, *args):
        return json.loads(self.run(*args, "-o", "json").stdout)

    def apply(self, *files, stdin=None, dry_run=False):
        args = ["apply", "--server-side", "--field-manager", "e2e"]
        if dry_run:
            # On a cluster Tilt deployed, Tilt owns fields such as the image; a dry run only
            # asks whether the API server accepts the manifest, so ownership must not matter.
            args += ["--dry-run=server", "--force-conflicts"]
        for f in files or ["-"]:
            args += ["-f", str(f)]
        return self.run(*args, stdin=stdin)

    @contextlib.contextmanager
    def scratch_namespace(self, prefix):
        """A namespace of the caller's own, deleted afterwards with whatever is left in it."""
        name = f"{prefix}-{secrets.token_hex(4)}"
        self.run("create", "namespace", name)
        try:
            yield name
        finally:
            self.run("delete", "namespace", name, "--wait=false", check=False)

    def wait_echoes_gone(self, prefix, timeout):
        """Waits until no Echo is left in a namespace named PREFIX-...: an earlier scratch
        namespace is deleted in the background, its objects' finalizers run by the operator.
        (The namespace itself may linger a few seconds more; it holds no more work.)"""
        def left():
            return [f"{echo['metadata']['namespace']}/{echo['metadata']['name']}"
                    for echo in self.json("get", "echoes.tracing.example.com", "--all-namespaces")["items"]
                    if echo["metadata"]["namespace"].startswith(f"{prefix}-")]

        eventually(f"the Echoes of earlier {prefix}-* namespaces gone", left, until=lambda names: not names,
                   timeout=timeout, interval=0.5)

    def echo(self, namespace, name):
        result = self.run("get", "echoes.tracing.example.com", name, "-n", namespace, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def wait_ready(self, namespace, name, timeout=120):
        """Waits for Ready=True on the object's current generation; returns the object."""
        return eventually(f"{namespace}/{name} Ready at its generation", lambda: self.echo(namespace, name),
                          until=ready_now, timeout=timeout, interval=0.5)

    def wait_gone(self, namespace, name, timeout=120):
        eventually(f"{namespace}/{name} gone", lambda: self.echo(namespace, name), until=lambda echo: echo is None,
                   timeout=timeout, interval=0.5)


def ready_now(echo):
    """Whether the Echo is Ready=True at its current generation."""
    status = (echo or {}).get("status") or {}
    ready = [c for c in status.get("conditions") or [] if c["type"] == "Ready"]
    return (
        bool(ready)
        and ready[0]["status"] == "True"
        and status.get("observedGeneration") == echo["metadata"]["generation"]
    )
