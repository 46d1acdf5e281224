"""The few Kubernetes API calls the benchmark makes, straight over HTTPS with the kubeconfig's
bearer token: one kubectl process per object would measure kubectl, not the operator.
Each thread keeps its own connection (http.client is not thread-safe)."""

import base64
import http.client
import json
import ssl
import tempfile
import threading
import urllib.parse

import yaml

GROUP = "/apis/tracing.example.com/v1alpha1"


class ApiError(Exception):
    def __init__(self, method, path, status, body):
        super().__init__(f"{method} {path}: {status} {body[:300]}")
        self.status = status


class KubeApi:
    def __init__(self, kubeconfig_path):
        config = yaml.safe_load(open(kubeconfig_path))
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        url = urllib.parse.urlsplit(cluster["server"])
        self.host, self.port = url.hostname, url.port or 443
        self.token = user["token"]
        with tempfile.NamedTemporaryFile("wb", suffix=".crt", delete=False) as ca:
            ca.write(base64.b64decode(cluster["certificate-authority-data"]))
        self.tls = ssl.create_default_context(cafile=ca.name)
        self.local = threading.local()

    def connection(self, timeout=30):
        return http.client.HTTPSConnection(self.host, self.port, context=self.tls, timeout=timeout)

    def request(self, method, path, body=None, content_type="application/json"):
        """One call; returns the decoded JSON answer or raises ApiError. Reconnects once if
        the thread's kept-alive connection was closed under it."""
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        data = self._send(method, path, payload, headers)
        return json.loads(data) if data else None

    def text(self, path):
        """A GET whose answer is text, such as the API server's own /metrics."""
        return self._send("GET", path, None, {"Accept": "text/plain"}).decode()

    def _send(self, method, path, payload, headers):
        headers = {"Authorization": f"Bearer {self.token}", **headers}
        for attempt in (1, 2):
            conn = getattr(self.local, "conn", None) or self.connection()
            self.local.conn = conn
            try:
                conn.request(method, path, payload, headers)
                response = conn.getresponse()
                data = response.read()
                break
            # A kept-alive connection the server closed while it idled fails as a reset or,
            # under TLS, as an EOF in the middle of the TLS protocol.
            except (http.client.HTTPException, ConnectionError, ssl.SSLEOFError):
                conn.close()
                self.local.conn = None
                if attempt == 2:
                    raise
        if response.status >= 300:
            raise ApiError(method, path, response.status, data.decode(errors="replace"))
        return data

    def watch(self, path, resource_version, on_event, stop):
        """Streams watch events of `path` from resource_version to on_event(type, object)
        until stop is set. A watch the server ends is resumed from the last version seen."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        while not stop.is_set():
            conn = self.connection(timeout=5)
            query = urllib.parse.urlencode(
                {"watch": "1", "resourceVersion": resource_version, "allowWatchBookmarks": "true"}
            )
            conn.request("GET", f"{path}?{query}", headers=headers)
            response = conn.getresponse()
            if response.status != 200:
                raise ApiError("WATCH", path, response.status, response.read().decode(errors="replace"))
            try:
                while not stop.is_set():
                    line = response.readline()
                    if not line:
                        break
                    event = json.loads(line)
                    if event["type"] == "ERROR":
                        raise ApiError("WATCH", path, event["object"].get("code"), json.dumps(event))
                    resource_version = event["object"]["metadata"]["resourceVersion"]
                    if event["type"] != "BOOKMARK":
                        on_event(event["type"], event["object"])
            except TimeoutError:
                pass  # quiet for 5 s: reconnect, and look at stop again
            finally:
                conn.close()
