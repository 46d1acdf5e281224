"""A failing test prints, as trees, the traces it fetched by id (the same view as
e2e/trace): what Jaeger held is usually the quickest way to see what went wrong.
Imported by the conftest of e2e/cluster and of e2e/faults."""

import pytest

from e2elib.trace_view import render


@pytest.fixture(autouse=True)
def print_traces_on_failure(request):
    if "jaeger" not in request.fixturenames:
        yield
        return
    jaeger = request.getfixturevalue("jaeger")
    jaeger.seen.clear()
    yield
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed and jaeger.seen:
        trees = "\n\n".join(render(trace) for trace in jaeger.seen.values())
        report.sections.append(("traces this test fetched from Jaeger", trees))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when == "call":
        item.report_call = outcome.get_result()
