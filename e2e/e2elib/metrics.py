"""The programs' /metrics, read with Prometheus's own Python parser. Both programs always
serve OpenMetrics text (application/openmetrics-text: exemplars, `# EOF`), so this is the
OpenMetrics parser; it raises ValueError on text that is not valid OpenMetrics."""

from prometheus_client.openmetrics.parser import text_string_to_metric_families


def samples(text):
    """Every sample of an OpenMetrics exposition: name, labels (a dict), value, exemplar."""
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def metric_sum(text, name, **labels):
    """The sum of every sample named `name` (e.g. `x_total`, not the family `x`) whose labels
    include `labels`."""
    return sum(
        (
            float(sample.value)
            for sample in samples(text)
            if sample.name == name and all(sample.labels.get(k) == str(v) for k, v in labels.items())
        ),
        0.0,
    )
