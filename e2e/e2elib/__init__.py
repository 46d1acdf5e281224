"""What the e2e suites and scripts share, imported as `e2elib.<module>`:

  jaeger        Jaeger's query API: traces and spans, searches
  kube          kubectl as a person runs it, and waiting for an Echo to be Ready or gone
  trace_view    a trace as a tree of text (e2e/trace, failing tests)
  trace_report  pytest hooks: a failing test prints the traces it fetched
  metrics       the programs' OpenMetrics text (prometheus_client's parser)
  polling       eventually(): the one polling loop, with a deadline and a clear failure
  ports         free loopback ports

This file imports nothing: e2e/trace runs with any python3, so the modules it uses (jaeger,
trace_view, polling) need the standard library only."""
