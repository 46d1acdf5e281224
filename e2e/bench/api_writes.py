"""What a round wrote to the API server, by the API server's own count
(`apiserver_request_total`), read before and after each phase: the operator's writes per
object, by verb and resource, once the benchmark's own requests are taken off."""

from prometheus_client.parser import text_string_to_metric_families

WRITE_VERBS = ("POST", "PUT", "PATCH", "APPLY", "DELETE")
# What the operator writes. Other writes in the same seconds are the harness's own (the
# namespace controller deleting an earlier round's namespace, leader leases).
RESOURCES = ("echoes", "echoes/status", "events")
# The benchmark's own request for each object in each phase (bench.py sends exactly these).
OWN = {"create": "POST echoes", "update": "PATCH echoes", "delete": "DELETE echoes"}


def write_counts(api):
    """{"VERB resource[/subresource]": write requests served so far} for RESOURCES."""
    counts = {}
    for family in text_string_to_metric_families(api.text("/metrics")):
        for sample in family.samples:
            if sample.name != "apiserver_request_total" or sample.labels.get("verb") not in WRITE_VERBS:
                continue
            resource = sample.labels.get("resource", "")
            if sample.labels.get("subresource"):
                resource += f"/{sample.labels['subresource']}"
            if resource not in RESOURCES:
                continue
            key = f"{sample.labels['verb']} {resource}"
            counts[key] = counts.get(key, 0) + sample.value
    return counts


def phase_writes(before, after, phase, objects):
    """The writes of one phase per object, without the benchmark's own request."""
    writes = {key: after.get(key, 0) - before.get(key, 0) for key in after}
    writes[OWN[phase]] = writes.get(OWN[phase], 0) - objects
    return {key: round(count / objects, 3) for key, count in sorted(writes.items()) if round(count / objects, 3)}
