"""e2elib.metrics on an exposition shaped as the programs serve it (the Rust
prometheus-client's OpenMetrics text): what the fault tests and the benchmark read."""

import pytest

from e2elib.metrics import metric_sum, samples

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
EXPOSITION = f"""# HELP echo_operator_reconciles Reconciles finished, by result and reason.
# TYPE echo_operator_reconciles counter
echo_operator_reconciles_total{{result="success",reason="Reconciled"}} 40
echo_operator_reconciles_total{{result="error",reason="EchoUnreachable"}} 2
# HELP echo_operator_reconcile_duration_seconds Duration of one reconcile; exemplars name its trace.
# TYPE echo_operator_reconcile_duration_seconds histogram
echo_operator_reconcile_duration_seconds_sum{{result="success",reason="Reconciled"}} 0.104
echo_operator_reconcile_duration_seconds_count{{result="success",reason="Reconciled"}} 2
echo_operator_reconcile_duration_seconds_bucket{{le="0.005",result="success",reason="Reconciled"}} 1 # {{trace_id="{TRACE}"}} 0.004 1795578004.35
echo_operator_reconcile_duration_seconds_bucket{{le="0.01",result="success",reason="Reconciled"}} 1
echo_operator_reconcile_duration_seconds_bucket{{le="+Inf",result="success",reason="Reconciled"}} 2 # {{trace_id="0af7651916cd43dd8448eb211c80319c"}} 0.1
# HELP echo_operator_tracked_objects Objects the operator keeps per-object state for, by kind of state.
# TYPE echo_operator_tracked_objects gauge
echo_operator_tracked_objects{{state="trace_links"}} 3
echo_operator_tracked_objects{{state="backoff"}} 0
# HELP echo_operator_leader 1 while this replica holds the lease and reconciles, 0 while it follows.
# TYPE echo_operator_leader gauge
echo_operator_leader 1
# EOF
"""


def test_metric_sum_adds_the_series_that_carry_the_labels_asked_for():
    assert metric_sum(EXPOSITION, "echo_operator_reconciles_total") == 42
    assert metric_sum(EXPOSITION, "echo_operator_reconciles_total", result="error") == 2
    assert metric_sum(EXPOSITION, "echo_operator_reconciles_total", result="none") == 0
    assert metric_sum(EXPOSITION, "echo_operator_leader") == 1
    assert metric_sum(EXPOSITION, "echo_operator_tracked_objects", state="trace_links") == 3
    # The exemplar after '#' is not the value; the family name is not a sample's.
    assert metric_sum(EXPOSITION, "echo_operator_reconcile_duration_seconds_bucket", le="0.005") == 1
    assert metric_sum(EXPOSITION, "echo_operator_reconcile_duration_seconds_bucket") == 1 + 1 + 2
    assert metric_sum(EXPOSITION, "echo_operator_reconciles") == 0


def test_values_are_floats_as_before():
    assert isinstance(metric_sum(EXPOSITION, "echo_operator_reconciles_total"), float)
    assert isinstance(metric_sum(EXPOSITION, "no_such_metric"), float)


def test_a_bucket_exemplar_names_its_trace():
    bucket = next(s for s in samples(EXPOSITION) if s.labels.get("le") == "0.005")
    assert bucket.exemplar.labels == {"trace_id": TRACE}
    assert bucket.exemplar.value == pytest.approx(0.004)


@pytest.mark.parametrize(
    "broken",
    [
        EXPOSITION.replace("# EOF\n", ""),  # cut short: must not read as fewer reconciles
        EXPOSITION.replace("} 40", "} forty"),
    ],
    ids=["truncated", "not-a-number"],
)
def test_text_that_is_not_openmetrics_is_an_error_not_a_zero(broken):
    with pytest.raises(ValueError):
        metric_sum(broken, "echo_operator_reconciles_total")
