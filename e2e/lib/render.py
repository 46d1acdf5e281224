"""Small helpers for e2e/up that need Python: free ports and configuration files derived
from the committed manifests, so the loopback harness runs exactly what kind runs."""

import sys
from pathlib import Path

import yaml

from e2elib.ports import free_ports

ROOT = Path(__file__).resolve().parents[2]


def jaeger_config(tail_sampling=True, max_traces=None):
    """The Jaeger configuration from the ConfigMap in deploy/40-jaeger.yaml; without its
    tail_sampling processor for the benchmark, whose latencies must not include the wait;
    with room for `max_traces` in memory for the benchmark at scale, which checks every
    trace of 10,000 objects after the round."""
    for doc in yaml.safe_load_all((ROOT / "deploy" / "40-jaeger.yaml").read_text()):
        if doc and doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "jaeger-config":
            text = doc["data"]["config.yaml"]
            if tail_sampling and max_traces is None:
                return text
            config = yaml.safe_load(text)
            if not tail_sampling:
                pipeline = config["service"]["pipelines"]["traces"]
                pipeline["processors"] = [p for p in pipeline["processors"] if p != "tail_sampling"]
                del config["processors"]["tail_sampling"]
            if max_traces is not None:
                for backend in config["extensions"]["jaeger_storage"]["backends"].values():
                    backend["memory"]["max_traces"] = max_traces
            return yaml.safe_dump(config, sort_keys=False)
    raise SystemExit("deploy/40-jaeger.yaml has no ConfigMap jaeger-config")


def tracing_config(endpoint):
    """kind's API server TracingConfiguration, pointed at the loopback Jaeger."""
    config = yaml.safe_load((ROOT / "deploy" / "kind" / "apiserver-tracing.yaml").read_text())
    config["endpoint"] = endpoint
    return yaml.safe_dump(config)


def prometheus_config(operator, echo_server):
    """Scrapes both programs' /metrics often, so a test sees an exemplar within seconds.
    Prometheus asks for OpenMetrics first, the format that carries exemplars."""
    job = lambda name, target: {"job_name": name, "static_configs": [{"targets": [target]}]}
    return yaml.safe_dump(
        {
            "global": {"scrape_interval": "2s", "scrape_timeout": "1s"},
            "scrape_configs": [job("echo-operator", operator), job("echo-server", echo_server)],
        }
    )


def main(argv):
    command, *args = argv
    if command == "ports":
        print(" ".join(str(p) for p in free_ports(int(args[0]))))
    elif command == "jaeger-config":
        sized = [int(a.split("=", 1)[1]) for a in args if a.startswith("--max-traces=")]
        print(jaeger_config(tail_sampling="--no-tail-sampling" not in args, max_traces=(sized or [None])[0]), end="")
    elif command == "tracing-config":
        print(tracing_config(args[0]), end="")
    elif command == "prometheus-config":
        print(prometheus_config(*args), end="")
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
