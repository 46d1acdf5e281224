"""bench-scale's rounds reduced to one row per object count and mode (medians over rounds), how
the cost grows from the smallest count to the largest, and the Markdown table (scale.py)."""

import statistics

from speed_fit import change_at_one_speed

PHASES = ("create", "update", "delete")
# The build under test (--bin-dir); rounds of a build run beside it (--compare) carry its name.
THIS_BUILD = "this"


def mode_label(mode, build):
    """A row's mode as tables and plots name it: the mode alone for this build, else with the build."""
    return mode if build == THIS_BUILD else f"{mode}, {build}"


def row(objects, mode, r):
    """One round's figures per object and per reconcile, from bench.py's round result `r`."""
    reconciles = sum(r[phase]["reconciles"] for phase in PHASES)
    writes = r["api_writes_per_object"]
    traces = r.get("traces")
    system = r["operator"].get("system_cpu_seconds", 0.0)
    return {
        "objects": objects,
        "mode": mode,
        "operator_cpu_ms_per_reconcile": r["operator"]["cpu_seconds"] * 1e3 / reconciles,
        # The same split: the process's own code, and the kernel on its behalf (system calls,
        # wake-ups), which rises when events come one at a time and with what else runs.
        "operator_user_ms_per_reconcile": (r["operator"]["cpu_seconds"] - system) * 1e3 / reconciles,
        "operator_system_ms_per_reconcile": system * 1e3 / reconciles,
        # Each phase's own, from the operator's CPU just before and after it.
        "operator_cpu_ms_per_reconcile_by_phase": {
            phase: (r[phase]["operator_user_cpu_seconds"] + r[phase]["operator_system_cpu_seconds"]) * 1e3
            / r[phase]["reconciles"] for phase in PHASES if "operator_user_cpu_seconds" in r[phase]},
        "operator_peak_rss_mib": r["operator"]["peak_rss_mib"],
        # The machine's speed during the round (speed.py): the same work's CPU time, so that a
        # slower hour of a shared VM is not read as a dearer reconcile.
        "speed_probe_ms": r.get("speed_probe_ms"),
        # The SDK's export thread: whether the export's own cost per reconcile grows with the count.
        "export_thread_ms_per_reconcile": r["operator"].get("export_thread_cpu_seconds", 0.0) * 1e3 / reconciles,
        "reconciles_per_object": reconciles / objects,
        "api_writes_per_object": writes,
        "events_per_object": sum(w.get("POST events", 0) for w in writes.values()),
        "spans_exported_per_object": r["operator"]["spans"]["exported"] / objects,
        "seconds_to_all_ready": r["create"]["seconds"],
        # The slowest phase's pace of requests: below --rate, the API server did not keep up.
        "sent_per_second": min((r[phase].get("sent_per_second") or 0.0) for phase in PHASES),
        # How long the round's namespace took to go (None: it did not, within the bound).
        "seconds_until_namespace_gone": r.get("seconds_until_namespace_gone"),
        # What else ran on the machine during the round: the harness's CPU and the host's steal.
        "harness_cpu_seconds": sum(r.get("harness_cpu_seconds", {}).values()),
        "steal_seconds": r.get("steal_seconds"),
        "traces_whole": None if not traces else f"{traces['spans_found']}/{traces['spans_expected']} spans",
        "errors": r["errors"] + ([f"{r['reconcile_errors']:.0f} reconciles failed"] if r["reconcile_errors"] else [])
                  + ([f"{traces['spans_expected'] - traces['spans_found']} spans missing"]
                     if traces and traces["spans_found"] != traces["spans_expected"] else []),
    }


# The per-round figures a count and mode's summary gives the median of.
MEDIANS = ("operator_cpu_ms_per_reconcile",
           "operator_user_ms_per_reconcile", "operator_system_ms_per_reconcile",
           "export_thread_ms_per_reconcile", "operator_peak_rss_mib",
           "reconciles_per_object", "events_per_object",
           "spans_exported_per_object", "seconds_to_all_ready", "sent_per_second", "speed_probe_ms")


def median(values):
    """The median of the figures a round has (None: results from before a figure existed)."""
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def summarise(rounds):
    """One row per count, mode and build from its rounds: the median of each figure, the CPU's
    spread, API writes as the median of each phase's verb, traces and errors of every round."""
    rows = []

    def key(r):
        return r["objects"], r["mode"], r.get("build", THIS_BUILD)

    for objects, mode, build in sorted({key(r) for r in rounds}):
        mine = [r for r in rounds if key(r) == (objects, mode, build)]
        row = {"objects": objects, "mode": mode, "build": build, "rounds": len(mine)}
        row.update({key: median(r.get(key) for r in mine) for key in MEDIANS})
        row["operator_cpu_ms_per_reconcile_by_phase"] = {
            phase: median(r.get("operator_cpu_ms_per_reconcile_by_phase", {}).get(phase) for r in mine)
            for phase in PHASES}
        cpu = [r["operator_cpu_ms_per_reconcile"] for r in mine]
        row["operator_cpu_ms_per_reconcile_range"] = (min(cpu), max(cpu))
        row["api_writes_per_object"] = {
            phase: {verb: statistics.median(r["api_writes_per_object"].get(phase, {}).get(verb, 0) for r in mine)
                    for verb in sorted({v for r in mine for v in r["api_writes_per_object"].get(phase, {})})}
            for phase in PHASES}
        traced = [r["traces_whole"] for r in mine if r["traces_whole"]]
        row["traces_whole"] = "; ".join(traced) or None
        row["errors"] = [e for r in mine for e in r["errors"]]
        rows.append(row)
    return rows


def growth(rows, mode, build=THIS_BUILD, rounds=()):
    """RSS bytes per object and the CPU per reconcile's change, from the smallest count to the
    largest: between the medians, and fitted over the rounds with the machine's speed taken out."""
    mine = sorted((r for r in rows if (r["mode"], r["build"]) == (mode, build)), key=lambda r: r["objects"])
    if len(mine) < 2:
        return None
    low, high = mine[0], mine[-1]

    def change(key):
        return high[key] / low[key] - 1 if high.get(key) and low.get(key) else None

    return {
        "rss_bytes_per_object": (high["operator_peak_rss_mib"] - low["operator_peak_rss_mib"]) * 2**20
        / (high["objects"] - low["objects"]),
        "cpu_per_reconcile_change": change("operator_cpu_ms_per_reconcile"),
        "user_cpu_per_reconcile_change": change("operator_user_ms_per_reconcile"),
        "cpu_per_reconcile_change_at_one_speed": change_at_one_speed(
            [r for r in rounds if (r["mode"], r.get("build", THIS_BUILD)) == (mode, build)]),
    }


def writes_cell(writes):
    return "; ".join(f"{phase}: " + ", ".join(f"{k} {v:g}" for k, v in writes[phase].items()) for phase in PHASES)


def at_one_speed(fit):
    """The growth with the machine's speed taken out (speed_fit.py), in words."""
    if not fit:
        return "at one machine speed: no fit (it needs speed probe readings, two counts and more rounds than counts + 1)"
    return (f"at one machine speed {fit['change']:+.1%} (95 % interval {fit['low']:+.1%} to {fit['high']:+.1%}; "
            f"{fit['rounds']} rounds, CPU ∝ probe^{fit['speed_exponent']:.2f})")


def number(value, spec):
    """A figure in a table cell, or a dash where the rounds had none."""
    return "–" if value is None else format(value, spec)


def cpu_range(row):
    low, high = row["operator_cpu_ms_per_reconcile_range"]
    return "" if row["rounds"] == 1 else f" ({low:.3f}–{high:.3f})"


def behind_pace(results):
    """Rows whose slowest phase sent its requests at under 90 % of the rate asked for."""
    rate = results.get("rate")
    return [r for r in results["rows"] if rate and r["sent_per_second"] < 0.9 * rate]


def markdown(results):
    m = results["machine"]
    rate = results.get("rate")
    pace = (f"requests sent at {rate:g} a second in each phase" if rate
            else "requests sent as fast as the API server took them")
    lines = [
        f"{results['rounds']} round(s) per count and mode, interleaved; each figure is the median over them (CPU: "
        f"min–max in brackets); {pace}; machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB. API "
        "writes are the API server's own count per object, the benchmark's own request taken off.",
        "",
        "| objects | mode | operator CPU per reconcile (ms) | speed probe (ms) "
        "| in user space / in the kernel (ms) | of which the export thread (ms) "
        "| operator peak RSS (MiB) | reconciles per object "
        "| Events per object | spans exported per object | create: all Ready (s) | traces | API writes per object |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['objects']:,} | {mode_label(r['mode'], r['build'])} | {r['operator_cpu_ms_per_reconcile']:.3f}{cpu_range(r)} | "
            f"{number(r['speed_probe_ms'], '.2f')} | "
            f"{r['operator_user_ms_per_reconcile']:.3f} / {r['operator_system_ms_per_reconcile']:.3f} | "
            f"{r['export_thread_ms_per_reconcile']:.3f} | "
            f"{r['operator_peak_rss_mib']:.1f} | {r['reconciles_per_object']:.2f} | {r['events_per_object']:.2f} | "
            f"{r['spans_exported_per_object']:.1f} | {r['seconds_to_all_ready']:.1f} | {r['traces_whole'] or '–'} | "
            f"{writes_cell(r['api_writes_per_object'])} |")
    lines.append("")
    by_build = results.get("growth_by_build") or {THIS_BUILD: results["growth"]}
    for build, growths in by_build.items():
        for mode, g in growths.items():
            if not g:
                continue
            name = f"mode {mode}" if build == THIS_BUILD else f"mode {mode}, build {build}"
            lines.append(f"- {name}: operator RSS grows {g['rss_bytes_per_object']:,.0f} bytes per object; "
                         f"CPU per reconcile changes {g['cpu_per_reconcile_change']:+.1%} from the smallest count to "
                         f"the largest ({g['user_cpu_per_reconcile_change']:+.1%} in user space alone); "
                         f"{at_one_speed(g['cpu_per_reconcile_change_at_one_speed'])}")
    for r in behind_pace(results):
        lines.append(f"- **behind the pace**: {r['objects']:,} objects, mode {mode_label(r['mode'], r['build'])}: "
                     f"{r['sent_per_second']:.0f} requests a second in its slowest phase, not {rate:g}")
    return "\n".join(lines) + "\n"
