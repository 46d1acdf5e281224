"""The benchmark's own arithmetic and parsing (e2e/bench), checked without a cluster: what it
reads from wrk, from a metrics exposition and from a Jaeger trace decides every figure it
reports, and the smoke run in `make test` only shows that it runs."""

import os
import ssl

import pytest

from bench.allocations import OUTSIDE, peak_heap, per_reconcile, sites, table
from bench.api_writes import phase_writes, write_counts
from bench.load import parse
from bench.plot import cumulative
from bench import programs
from bench.programs import span_counters, telemetry_env
from bench.report import markdown, percentile, summarise
from bench.traces import EXPECTED, missing
from e2elib.jaeger import Span, Trace

WRK = """Running 2s test @ http://127.0.0.1:4000
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.33us  201.10us   5.20ms   90.12%
    Req/Sec    19.71k     1.02k   21.03k    80.00%
  Latency Distribution
     50%  780.00us
     75%  850.00us
     90%    1.01ms
     99%    1.50s
  39422 requests in 2.00s, 5.99MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  19707.31
Transfer/sec:      2.99MB
"""


def test_wrk_output_is_read_in_milliseconds_with_every_failure_counted():
    result = parse(WRK)
    assert result["requests_per_second"] == pytest.approx(19707.31)
    assert result["p50_ms"] == pytest.approx(0.78)
    assert result["p90_ms"] == pytest.approx(1.01)
    assert result["p99_ms"] == pytest.approx(1500.0)
    assert result["requests"] == 39422
    assert result["errors"] == 4 + 2 + 1


def test_wrk_output_without_figures_is_an_error_not_a_zero():
    with pytest.raises(RuntimeError, match="cannot read"):
        parse("unable to connect to 127.0.0.1:4000 Connection refused\n")


SPAN_COUNTERS = """# HELP echo_server_otel_spans_ended Sampled spans handed to the batch span processor.
# TYPE echo_server_otel_spans_ended counter
echo_server_otel_spans_ended_total 12
# HELP echo_server_otel_spans_exported Spans the OTLP exporter delivered.
# TYPE echo_server_otel_spans_exported counter
echo_server_otel_spans_exported_total 10
# HELP echo_server_otel_spans_export_failed Spans in export batches the collector did not accept (dropped).
# TYPE echo_server_otel_spans_export_failed counter
echo_server_otel_spans_export_failed_total 1
# EOF
"""


def test_span_counters_are_read_from_the_programs_metrics(monkeypatch):
    # The parsing itself (e2elib.metrics) is checked in test_openmetrics.py.
    monkeypatch.setattr(programs, "http_get", lambda url: SPAN_COUNTERS)
    assert span_counters("http://x/metrics", "echo_server") == {"ended": 12, "exported": 10, "export_failed": 1}


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7], 95) == 7
    assert percentile([3, 1, 2], 50) == 2


def test_modes_differ_only_in_their_telemetry_settings():
    assert telemetry_env("A", "127.0.0.1:4317", "grpc", 9) == {"OTEL_SDK_DISABLED": "true"}
    exporting = telemetry_env("B", "127.0.0.1:4317", "grpc", 9)
    unreachable = telemetry_env("C", "127.0.0.1:4317", "grpc", 9)
    assert exporting["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:4317"
    assert unreachable["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:9"
    assert {k: v for k, v in exporting.items() if k != "OTEL_EXPORTER_OTLP_ENDPOINT"} == {
        k: v for k, v in unreachable.items() if k != "OTEL_EXPORTER_OTLP_ENDPOINT"
    }


def test_the_plot_steps_through_every_object_in_latency_order():
    seconds, share = cumulative([3000.0, 1000.0, 2000.0, 2000.0])
    assert seconds == [1.0, 2.0, 2.0, 3.0]
    assert share == [0.25, 0.5, 0.75, 1.0]


def test_recorded_only_samples_every_span_and_exports_none():
    recorded = telemetry_env("R", "127.0.0.1:4317", "grpc", 9)
    assert recorded["OTEL_TRACES_SAMPLER"] == "parentbased_always_on"
    assert not any(k.startswith("OTEL_EXPORTER_") or k == "OTEL_SDK_DISABLED" for k in recorded)


def _round(mode, cpu, export_thread=None):
    phase = {"seconds": 1.0, "objects_per_second": 1.0, "reconciles_per_second": 1.0, "reconciles": 10,
             "p50_ms": 1.0, "p95_ms": 1.0, "p99_ms": 1.0}
    program = {"cpu_seconds": cpu, "peak_rss_mib": 1.0, "spans": {"ended": 3, "exported": 1}}
    operator = dict(program)
    if export_thread is not None:
        operator["export_thread_cpu_seconds"] = export_thread
    return {"mode": mode, "round": 1, "create": phase, "update": phase, "delete": phase, "operator": operator,
            "echo_server": dict(program), "harness_cpu_seconds": {"kube-apiserver": 1.0, "etcd": 1.0, "jaeger": 1.0}}


def _load(mode, rps, requests, jaeger_cpu):
    return {"mode": mode, "round": 1, "requests_per_second": rps, "p50_ms": 1.0, "p99_ms": 2.0,
            "cpu_us_per_request": 50.0, "jaeger_cpu_seconds": jaeger_cpu, "requests": requests,
            "spans": {"ended": 10, "exported": 7}}


def test_report_sums_cpu_per_object_and_splits_the_echo_load_four_ways():
    results = {"objects": 10, "machine": {"cores": 2, "cpu": "x", "memory_gib": 1, "kernel": "k"},
               "rounds": [_round("A", 1.0), _round("B", 2.0, export_thread=0.6), _round("C", 1.5)],
               "echo_load": [_load("A", 1000.0, 4000, 0.0), _load("R", 800.0, 3200, 0.0),
                             _load("C", 700.0, 2800, 0.0), _load("B", 500.0, 2000, 0.2)]}
    results["summary"] = summarise(results)
    modes = results["summary"]["modes"]
    # operator + echo-server + three harness processes, over 10 objects.
    assert modes["B"]["cpu_ms_per_object"]["median"] == pytest.approx((2 + 2 + 3) / 10 * 1e3)
    assert modes["A"]["operator/spans/lost"]["median"] == 2
    # 2 CPU seconds over the round's 30 reconciles (create, update and delete).
    assert modes["B"]["operator/cpu_us_per_reconcile"]["median"] == pytest.approx(2 / 30 * 1e6)
    # The batch processor thread's share; a round without it (tracing off) reads 0.
    assert modes["B"]["operator/export_thread_us_per_reconcile"]["median"] == pytest.approx(0.6 / 30 * 1e6)
    assert modes["A"]["operator/export_thread_us_per_reconcile"]["median"] == 0
    load = results["summary"]["echo_load"]
    assert load["B"]["jaeger_cpu_us_per_request"]["median"] == pytest.approx(100.0)
    assert load["B"]["spans_lost"]["median"] == 3
    table = markdown(results).splitlines()
    row = next(line for line in table if line.startswith("| requests per second"))
    assert row == "| requests per second | 1000 | 800 | 700 | 500 | 0.80 | 0.70 | 0.50 |"
    # No R rounds here: its column and ratio say so instead of showing a zero.
    row = next(line for line in table if line.startswith("| operator: CPU seconds"))
    assert row == "| operator: CPU seconds | 1.0 | 2.0 | 1.5 | – | 2.00 | 1.50 | – |"


def _span(service, name, kind=None, **tags):
    return Span(service, name, name, None, dict(tags, **({"span.kind": kind} if kind else {})), 0, 1)


WHOLE = [
    _span("echo-operator", "watch Echo Apply", "consumer"),
    _span("echo-operator", "reconciling object"),
    _span("echo-operator", "reconcile Echo"),
    _span("echo-operator", "PUT", "client", **{"http.request.method": "PUT",
                                                "url.full": "http://e:8080/v1/echoes/ns/a"}),
    _span("echo-server", "PUT /v1/echoes/{namespace}/{name}", "server"),
    _span("echo-server", "store write"),
    _span("echo-operator", "write status"),
    _span("echo-operator", "PATCH /apis/tracing.example.com/v1alpha1/namespaces/{namespace}/echoes/{name}/status",
          "client"),
]


def test_a_whole_reconcile_trace_misses_nothing():
    assert missing(Trace("t", WHOLE)) == []
    assert len(EXPECTED) == len(WHOLE)


@pytest.mark.parametrize("index", range(len(WHOLE)))
def test_each_missing_span_is_named(index):
    spans = WHOLE[:index] + WHOLE[index + 1:]
    assert missing(Trace("t", spans)) == [list(EXPECTED)[index]]


def test_a_trace_jaeger_does_not_have_misses_everything():
    assert missing(None) == list(EXPECTED)


def test_a_put_to_the_api_server_is_not_the_echo_call():
    api_put = _span("echo-operator", "PUT", "client", **{"http.request.method": "PUT",
                                                          "url.full": "https://api/apis/x"})
    spans = [s for s in WHOLE if "url.full" not in s.tags] + [api_put]
    assert missing(Trace("t", spans)) == ["echo CLIENT"]


class MetricsApi:
    """The API server's /metrics, as KubeApi.text() returns it."""

    def __init__(self, **counts):
        lines = ["# HELP apiserver_request_total Counter of apiserver requests.",
                 "# TYPE apiserver_request_total counter"]
        for key, value in counts.items():
            verb, resource, subresource = (key.split("_") + [""])[:3]
            for code in ("200", "409"):  # every code of a request counts
                lines.append(f'apiserver_request_total{{code="{code}",resource="{resource}",'
                             f'subresource="{subresource}",verb="{verb.upper()}"}} {value / 2}')
        self.body = "\n".join(lines) + "\n"

    def text(self, path):
        assert path == "/metrics"
        return self.body


def test_api_writes_per_object_leave_out_the_benchmarks_own_requests_and_the_harness():
    objects = 40
    before = write_counts(MetricsApi(post_echoes=7, patch_echoes=3, apply_echoes_status=2, post_events=5,
                                     put_leases=11, get_echoes=100))
    after = write_counts(MetricsApi(post_echoes=7 + objects, patch_echoes=3 + objects, apply_echoes_status=2 + objects,
                                    post_events=5 + 2 * objects, put_leases=11 + 9, get_echoes=100 + 3 * objects))
    # The create phase's own POST per object is the benchmark's; reads and leases are not counted.
    assert phase_writes(before, after, "create", objects) == {
        "PATCH echoes": 1.0, "APPLY echoes/status": 1.0, "POST events": 2.0}


def test_cpu_by_thread_names_each_thread_and_adds_up_to_the_process():
    import os
    import threading
    import time

    def spin(seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass

    worker = threading.Thread(target=spin, args=(0.3,))
    worker.start()
    # Read while the worker is alive: a thread that ended is no longer listed.
    time.sleep(0.1)
    by_thread = programs.cpu_seconds_by_thread(os.getpid())
    worker.join()
    total = programs.cpu_seconds(os.getpid())
    assert len(by_thread) >= 1 and all(isinstance(name, str) and name for name in by_thread)
    assert 0 < sum(by_thread.values()) <= total + 0.05
    # The SDK's thread is found by the 15 characters the kernel keeps of its name.
    assert programs.export_thread_seconds({"OpenTelemetry.T": 0.6, "tokio-runtime-w": 1.7}) == 0.6
    assert programs.export_thread_seconds({"tokio-runtime-w": 1.7}) == 0.0


def test_a_stat_line_splits_into_user_and_system_time_even_with_a_parenthesis_in_the_name():
    ticks = os.sysconf("SC_CLK_TCK")
    stat = f"4242 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 {3 * ticks} {ticks} 0 0 20 0 9 0 100"
    assert programs._stat_user_and_system(stat) == (3.0, 1.0)
    assert programs._stat_cpu_seconds(stat) == 4.0
    _, system = programs.user_and_system_seconds(os.getpid())
    assert system <= programs.cpu_seconds(os.getpid())


def _scale_round(objects, mode, cpu_ms, rss, writes=1.0, errors=(), probe_ms=10.0):
    return {"objects": objects, "mode": mode, "operator_cpu_ms_per_reconcile": cpu_ms, "operator_peak_rss_mib": rss,
            "operator_user_ms_per_reconcile": cpu_ms * 0.75, "operator_system_ms_per_reconcile": cpu_ms * 0.25,
            "speed_probe_ms": probe_ms,
            "export_thread_ms_per_reconcile": 0.03 if mode == "B" else 0.0,
            "reconciles_per_object": 3.0, "events_per_object": 3.0, "spans_exported_per_object": 16.0,
            "seconds_to_all_ready": objects / 150, "sent_per_second": 100.0, "traces_whole": "16/16 spans" if mode == "B" else None,
            "api_writes_per_object": {"create": {"PATCH echoes": writes}, "update": {}, "delete": {}},
            "errors": list(errors)}


def test_a_paced_fan_out_spreads_its_requests_at_the_rate_and_an_unpaced_one_does_not():
    import concurrent.futures

    from bench.paced import fan_out, sending_rate

    names = [f"echo-{i}" for i in range(6)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        paced, errors = fan_out(pool, lambda name: None, names, rate=20)
        assert not errors and sorted(paced) == sorted(names)
        # 5 intervals at 20 a second: 250 ms from the first to the last, however fast the
        # requests are (10 % off for the first request's own start on a busy machine).
        assert sending_rate(paced) <= 20 / 0.9
        unpaced, _ = fan_out(pool, lambda name: None, names)
        assert sending_rate(unpaced) is None or sending_rate(unpaced) > 20 / 0.9

        def refuse(name):
            raise RuntimeError(f"refused {name}")

        sent, errors = fan_out(pool, refuse, names[:2], rate=20)
        assert sent == {} and sorted(errors) == ["refused echo-0", "refused echo-1"]


def test_a_scale_row_below_the_pace_is_named_in_the_table():
    from bench.scale_report import markdown as scale_markdown, row as scale_row, summarise as scale_summarise

    def result(sent_per_second):
        phase = {"reconciles": 1000, "seconds": 10.0, "sent_per_second": sent_per_second}
        return {"create": phase, "update": phase, "delete": dict(phase, sent_per_second=sent_per_second - 5),
                "api_writes_per_object": {}, "errors": [], "reconcile_errors": 0,
                "operator": {"cpu_seconds": 3.0, "peak_rss_mib": 20.0,
                             "spans": {"exported": 0}}}

    rounds = [dict(scale_row(1000, "A", result(100.0)), build="this"),
              dict(scale_row(10000, "A", result(70.0)), build="this")]
    assert rounds[1]["sent_per_second"] == 65.0  # the slowest phase
    rows = scale_summarise(rounds)
    table = scale_markdown({"machine": {"cores": 2, "cpu": "x", "memory_gib": 1}, "rounds": 1, "rows": rows,
                            "growth": {}, "rate": 100})
    assert "requests sent at 100 a second in each phase" in table
    assert "behind the pace**: 10,000 objects, mode A: 65 requests a second" in table
    assert "behind the pace**: 1,000" not in table
    unpaced = scale_markdown({"machine": {"cores": 2, "cpu": "x", "memory_gib": 1}, "rounds": 1, "rows": rows,
                              "growth": {}, "rate": None})
    assert "as fast as the API server took them" in unpaced and "behind the pace" not in unpaced


def test_scale_row_splits_the_reconciles_cpu_by_kind_and_by_phase():
    from bench.scale_report import row as scale_row

    def phase(reconciles, user, system):
        return {"reconciles": reconciles, "seconds": 7.0, "operator_user_cpu_seconds": user,
                "operator_system_cpu_seconds": system}

    result = {"create": phase(1000, 1.2, 0.3), "update": phase(1000, 0.6, 0.2), "delete": phase(500, 0.4, 0.1),
              "api_writes_per_object": {}, "errors": [], "reconcile_errors": 0, "speed_probe_ms": 9.5,
              "operator": {"cpu_seconds": 3.3, "peak_rss_mib": 20.0, "system_cpu_seconds": 0.75,
                           "export_thread_cpu_seconds": 0.0, "spans": {"exported": 0}}}
    r = scale_row(1000, "A", result)
    assert r["operator_cpu_ms_per_reconcile"] == pytest.approx(3.3e3 / 2500)
    assert r["operator_user_ms_per_reconcile"] == pytest.approx(2.55e3 / 2500)
    assert r["operator_system_ms_per_reconcile"] == pytest.approx(0.3)
    by_phase = r["operator_cpu_ms_per_reconcile_by_phase"]
    assert by_phase == pytest.approx({"create": 1.5, "update": 0.8, "delete": 1.0})
    assert r["speed_probe_ms"] == 9.5


def test_a_round_on_a_slower_machine_is_read_against_its_own_speed_probe():
    from bench.scale_report import growth, markdown as scale_markdown, summarise as scale_summarise

    # CPU per reconcile = 0.01 · probe² and 5 % more at 10,000 objects, give or take 1 %; the
    # 10,000-object rounds ran on a slower machine (their probe higher), so their medians differ
    # by far more.
    wobble = [1.01, 0.99, 1.0]
    rounds = [dict(_scale_round(objects, "A", 0.01 * probe**2 * step * w, 20.0, probe_ms=probe), build="this")
              for objects, step, probes in ((1000, 1.0, (9.0, 10.0, 11.0)), (10000, 1.05, (10.5, 12.0, 12.5)))
              for probe, w in zip(probes, wobble)]
    rows = scale_summarise(rounds)
    assert rows[1]["speed_probe_ms"] == pytest.approx(12.0)
    g = growth(rows, "A", rounds=rounds)
    assert g["cpu_per_reconcile_change"] > 0.5
    fit = g["cpu_per_reconcile_change_at_one_speed"]
    assert fit["change"] == pytest.approx(0.05, abs=0.02)
    assert fit["low"] < 0.05 < fit["high"] and fit["high"] - fit["low"] < 0.2
    assert fit["speed_exponent"] == pytest.approx(2.0, abs=0.3) and fit["rounds"] == 6
    table = scale_markdown({"machine": {"cores": 2, "cpu": "x", "memory_gib": 1}, "rounds": 3, "rows": rows,
                            "growth": {"A": g}})
    assert "| 10,000 | A | " in table and " | 12.00 | " in table
    assert f"at one machine speed {fit['change']:+.1%} (95 % interval" in table


def test_the_fit_at_one_speed_needs_probe_readings_two_counts_and_a_degree_of_freedom():
    from bench.speed_fit import change_at_one_speed, t95

    def rounds(probes_by_count):
        return [{"objects": objects, "operator_cpu_ms_per_reconcile": 1.0 + probe / 100, "speed_probe_ms": probe}
                for objects, probes in probes_by_count.items() for probe in probes]

    assert change_at_one_speed(rounds({1000: [9.0, 10.0, 11.0]})) is None  # one count
    assert change_at_one_speed(rounds({1000: [9.0, 10.0], 10000: [11.0]})) is None  # no degree left
    assert change_at_one_speed(rounds({1000: [10.0, 10.0], 10000: [10.0, 10.0]})) is None  # speed and count tied
    unprobed = [dict(r, speed_probe_ms=None) for r in rounds({1000: [9.0, 10.0], 10000: [11.0, 12.0]})]
    assert change_at_one_speed(unprobed) is None  # results from before the probe
    # Rounds without a reading are not left out: that could drop the largest count unseen.
    three = rounds({1000: [9.0, 10.0], 3000: [10.0, 11.0], 10000: [11.0, 12.0]})
    assert change_at_one_speed([dict(r, speed_probe_ms=None) if r["objects"] == 10000 else r for r in three]) is None
    assert change_at_one_speed(three)["counts"] == (1000, 10000)
    assert change_at_one_speed(rounds({1000: [9.0, 10.0], 10000: [11.0, 12.5]})) is not None
    assert t95(5) == 2.57 and t95(11) == t95(10)  # between entries: the wider interval


def test_the_speed_probe_is_read_inside_the_rounds_window_and_a_cut_line_is_skipped():
    from bench.speed import readings, timed_ms

    lines = ["10.000 9.5", "11.000 9.7", "12.000 30.0", "13.000 9.6", "14.00"]
    assert readings(lines, 10.5, 13.0) == [9.7, 30.0, 9.6]
    assert readings(lines, 20.0, 30.0) == []
    assert timed_ms() > 0


def test_scale_takes_the_median_of_each_count_and_mode_and_its_growth_from_those():
    from bench.scale_report import growth, markdown as scale_markdown, summarise as scale_summarise

    rounds = [_scale_round(1000, "A", 1.0, 20.0), _scale_round(10000, "A", 1.3, 56.0, writes=2.0),
              _scale_round(1000, "A", 1.3, 25.0), _scale_round(10000, "A", 1.1, 60.0),
              _scale_round(1000, "A", 1.1, 21.0, errors=["1 reconciles failed"]),
              _scale_round(10000, "A", 1.2, 58.0)]
    rows = scale_summarise(rounds)
    assert [(r["objects"], r["rounds"]) for r in rows] == [(1000, 3), (10000, 3)]
    low, high = rows
    assert low["operator_cpu_ms_per_reconcile"] == pytest.approx(1.1)
    assert low["operator_cpu_ms_per_reconcile_range"] == (1.0, 1.3)
    assert high["api_writes_per_object"]["create"]["PATCH echoes"] == 1.0
    # An error in any round stays on the row, so that the run fails.
    assert low["errors"] == ["1 reconciles failed"]
    g = growth(rows, "A")
    assert g["cpu_per_reconcile_change"] == pytest.approx(1.2 / 1.1 - 1)
    assert g["rss_bytes_per_object"] == pytest.approx((58.0 - 21.0) * 2**20 / 9000)
    table = scale_markdown({"machine": {"cores": 2, "cpu": "x", "memory_gib": 1}, "rounds": 3, "rows": rows,
                            "growth": {"A": g}})
    assert "| 1,000 | A | 1.100 (1.000–1.300) | 10.00 | 0.825 / 0.275 |" in table


def test_steal_is_the_eighth_figure_of_the_cpu_line_in_clock_ticks(tmp_path):
    stat = tmp_path / "stat"
    ticks = os.sysconf("SC_CLK_TCK")
    stat.write_text(f"cpu  972992 0 135204 137300 1256 0 16481 {3 * ticks} 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    assert programs.steal_seconds(stat) == pytest.approx(3.0)
    stat.write_text("cpu  1 2 3 4\n")  # a kernel without the column
    assert programs.steal_seconds(stat) == 0.0


def test_scale_keeps_a_compared_build_apart_with_its_own_rows_and_growth():
    from bench.scale_report import growth, markdown as scale_markdown, summarise as scale_summarise

    rounds = [dict(_scale_round(1000, "A", 1.0, 20.0), build="this"),
              dict(_scale_round(1000, "A", 0.8, 19.0), build="before"),
              dict(_scale_round(10000, "A", 1.1, 50.0), build="this"),
              dict(_scale_round(10000, "A", 1.0, 52.0), build="before")]
    rows = scale_summarise(rounds)
    assert [(r["objects"], r["build"], r["operator_cpu_ms_per_reconcile"]) for r in rows] == [
        (1000, "before", 0.8), (1000, "this", 1.0), (10000, "before", 1.0), (10000, "this", 1.1)]
    assert growth(rows, "A")["cpu_per_reconcile_change"] == pytest.approx(0.1)
    assert growth(rows, "A", "before")["cpu_per_reconcile_change"] == pytest.approx(0.25)
    table = scale_markdown({"machine": {"cores": 2, "cpu": "x", "memory_gib": 1}, "rounds": 1, "rows": rows,
                            "growth": {"A": growth(rows, "A")},
                            "growth_by_build": {"this": {"A": growth(rows, "A")},
                                                "before": {"A": growth(rows, "A", "before")}}})
    assert "| 1,000 | A, before | 0.800 |" in table
    assert "| 1,000 | A | 1.000 |" in table
    assert "- mode A: operator RSS grows" in table and "changes +10.0% from" in table
    assert "- mode A, build before: operator RSS grows" in table and "changes +25.0% from" in table


# heaptrack_print's collapsed stacks (root first), as the allocation count reads them.
HEAPTRACK_STACKS = """\
main;echo_operator::operator::reconcile::reconcile::h0123456789abcdef;echo_operator::operator::reconcile::reconcile_span::h0123456789abcdef;tracing::span::Span::new::h0123456789abcdef 12
main;echo_operator::operator::reconcile::reconcile::h0123456789abcdef;echo_operator::operator::reconcile::reconcile_span::h0123456789abcdef;tracing::span::Span::new::h0123456789abcdef;tracing_subscriber::fmt::on_new_span 6
main;tokio::run;_$LT$echo_operator..operator..calls..api_tracing..ApiTracing$LT$S$GT$$u20$as$u20$tower_service..Service$GT$::call::h0123456789abcdef;alloc::fmt::format::h0123456789abcdef 30
main;hyper::proto::h1::role::parse::h0123456789abcdef;http::header::name::HeaderName::from_bytes 20
"""


def test_allocations_go_to_the_innermost_frame_of_this_projects_code_and_the_call_it_made():
    counts = sites(HEAPTRACK_STACKS)
    assert counts == {
        "echo_operator::operator::reconcile::reconcile_span → tracing::span::Span::new": 18,
        "<echo_operator::operator::calls::api_tracing::ApiTracing<S> as tower_service::Service>::call"
        " → alloc::fmt::format": 30,
        OUTSIDE: 20,
    }


def test_allocations_per_reconcile_are_divided_by_the_rounds_reconciles_and_tabled_per_count():
    small = per_reconcile(sites(HEAPTRACK_STACKS), 2)
    large = per_reconcile({site: n * 10 for site, n in sites(HEAPTRACK_STACKS).items()}, 40)
    assert small[OUTSIDE] == 10
    assert large[OUTSIDE] == 5
    text = table({"1,000": small, "10,000": large}, {"1,000": "5.31M", "10,000": "28.79M"})
    assert "| **all** | **34.0** | **17.0** |" in text
    assert "| peak heap (not per reconcile) | 5.31M | 28.79M |" in text
    # Sites by their largest figure: the API call's 15 allocations per reconcile first.
    rows = text.splitlines()[4:]
    assert rows[0].startswith("| `<echo_operator::operator::calls::api_tracing") and rows[0].endswith("| 15.0 | 7.5 |")
    with pytest.raises(ValueError):
        per_reconcile(small, 0)


def test_the_peak_heap_is_read_from_heaptracks_summary():
    summary = "calls to allocation functions: 2173315 (91250/s)\npeak heap memory consumption: 5.31M\n"
    assert peak_heap(summary) == "5.31M"
    assert peak_heap("no summary") == "?"


class _Connection:
    """An http.client connection whose request fails with `error`, or answers `body`."""

    def __init__(self, error=None, body=b"{}"):
        self.error, self.body, self.closed = error, body, False

    def request(self, *args):
        if self.error:
            raise self.error

    def getresponse(self):
        connection = self

        class Response:
            status = 200

            def read(self):
                return connection.body

        return Response()

    def close(self):
        self.closed = True


@pytest.mark.parametrize("error", [ConnectionResetError(), ssl.SSLEOFError()])
def test_a_kept_alive_connection_the_server_closed_is_replaced_once(error):
    import threading

    from bench.kube_api import KubeApi

    api = KubeApi.__new__(KubeApi)
    api.token, api.local = "t", threading.local()
    stale, fresh = _Connection(error), _Connection(body=b'{"kind": "Echo"}')
    api.local.conn = stale
    api.connection = lambda timeout=30: fresh
    assert api.request("POST", "/x", {}) == {"kind": "Echo"}
    assert stale.closed and api.local.conn is fresh
    # A second failure in a row is the server's answer, not a stale connection.
    api.local.conn, api.connection = stale, lambda timeout=30: _Connection(error)
    with pytest.raises(type(error)):
        api.request("POST", "/x", {})


def test_scale_growth_in_user_space_is_taken_from_the_user_figures_alone():
    from bench.scale_report import growth, markdown as scale_markdown, summarise as scale_summarise

    rows = scale_summarise([dict(_scale_round(1000, "A", 1.0, 20.0), build="this", operator_user_ms_per_reconcile=0.5),
                            dict(_scale_round(10000, "A", 1.2, 50.0), build="this", operator_user_ms_per_reconcile=0.55)])
    g = growth(rows, "A")
    assert g["cpu_per_reconcile_change"] == pytest.approx(0.2)
    assert g["user_cpu_per_reconcile_change"] == pytest.approx(0.1)
    table = scale_markdown({"machine": {"cores": 2, "cpu": "x", "memory_gib": 1}, "rounds": 1, "rows": rows,
                            "growth": {"A": g}})
    assert "| 1,000 | A | 1.000 | 10.00 | 0.500 / 0.250 |" in table
    assert "+10.0% in user space alone" in table


def test_a_cpu_series_samples_the_program_and_the_work_done_until_stopped():
    import time

    class Busy:
        def __init__(self):
            self.reads = 0

        def user_and_system_seconds(self):
            self.reads += 1
            return float(self.reads), 0.5

    series = programs.CpuSeries(Busy(), lambda: 7, interval=0.01)
    time.sleep(0.2)
    points = list(series.stop())
    time.sleep(0.1)
    assert len(points) >= 3 and series.points == points
    assert [(user, system, done) for _, user, system, done in points[:3]] == [(1.0, 0.5, 7), (2.0, 0.5, 7), (3.0, 0.5, 7)]
    assert [p[0] for p in points] == sorted(p[0] for p in points)


def test_the_fit_reads_the_rounds_of_several_runs_together(tmp_path, capsys):
    import json

    from bench.speed_fit import main

    def run(path, probes):
        rounds = [{"objects": objects, "mode": "A", "build": "this", "speed_probe_ms": probe,
                   "operator_cpu_ms_per_reconcile": 0.01 * probe**2 * (1.05 if objects == 10000 else 1.0)}
                  for objects, probe in probes]
        path.write_text(json.dumps({"per_round": rounds}))
        return str(path)

    # Each run alone has no degree of freedom left; together they have one.
    first = run(tmp_path / "first.json", [(1000, 9.0), (10000, 10.0)])
    second = run(tmp_path / "second.json", [(1000, 11.0), (10000, 12.5)])
    main([first])
    assert capsys.readouterr().out == "mode A: no fit (2 rounds)\n"
    main([first, second])
    assert "mode A: +5.0% from 1,000 to 10,000 objects at one machine speed" in capsys.readouterr().out
