# The README's commands. `make test` is what CI runs (.ci/run).
.PHONY: test lint unit offline kind-config tilt-check kind-smoke kind kind-or-skip kind-down e2e faults bench bench-scale bench-spans profile-echo profile-operator profile-allocations bench-smoke up down

VENV := target/venv

## Every test: formatting, lints, Rust tests, offline manifest/Tiltfile/Dockerfile checks,
## the kind config rendered by kind's own code, the Tiltfile as Tilt reads it, then the end-to-end run on a real API server
## and a real Jaeger on loopback, the fault tests on a harness of their own, the
## benchmark's smoke run (it fails on a failure or an incomplete trace, never on a timing),
## and the kind mode: kind and Tilt for real (as root; skipped loudly otherwise).
test: lint unit offline kind-config tilt-check e2e faults bench-smoke kind-or-skip

## Unused direct dependencies fail the lint too (cargo-machete, installed once from crates.io).
lint:
	cargo fmt --check
	cargo clippy --all-targets --locked -- -D warnings
	command -v cargo-machete >/dev/null || cargo install --locked --quiet cargo-machete@0.9.2
	cargo machete

unit:
	cargo test --locked

## The kind cluster config rendered with the code of each supported kind release.
kind-config:
	e2e/kind-config/check

## The Tiltfile as Tilt v0.37.6 itself reads it, built (once, cached in target/e2e-bin) from
## ../shared/tools/tilt: resources, their order, the buttons, the images, the kind-only guard.
tilt-check: $(VENV)/.installed
	e2e/lib/build-tools --kind
	$(VENV)/bin/python -m pytest -q e2e/kind

## Not in `make test` (the kind mode covers it): whether a kind node can start here at all,
## for when `kind create cluster` fails: `docker run/exec --privileged` through
## e2e/kind/runc-no-sys-resource, and systemd 257 (kind's Debian trixie) booting as PID 1
## with kind's flags. As root.
kind-smoke:
	e2e/kind/smoke

## The README's Quickstart for real (docs/kind-mode.md): a kind node image built here from
## kind's own recipes, `kind create cluster` with deploy/kind/cluster.yaml, `tilt ci` with the
## Tiltfile, the cluster tests and the NetworkPolicy test, teardown. Needs root.
kind:
	e2e/kind/run

kind-or-skip:
	e2e/kind/run --or-skip

kind-down:
	e2e/kind/down

e2e:
	e2e/run

## Faults injected for real (processes stopped, killed, paused, restarted) on the loopback harness.
faults:
	e2e/run --faults

## What tracing costs: 1,000 objects, tracing off / exporting / collector unreachable /
## recorded only, interleaved, release builds; prints the table (target/bench/results.md).
bench:
	e2e/bench/run

## How the operator's cost grows (not in `make test`; about 55 minutes): modes A and B at
## 1,000, 3,000 and 10,000 objects, 100 requests a second in each phase, three interleaved
## rounds (one round differs from the next by more than the growth it measures); prints the
## medians (target/bench-scale/results.md).
bench-scale:
	e2e/bench/run --scale --rounds 3

## What a span costs, layer by layer (criterion; not in `make test`): one echo request's and
## one reconcile's span work through the binaries' subscriber, then with each layer removed.
bench-spans:
	cargo bench --locked --bench span_cost -- --warm-up-time 1 --measurement-time 3

## Where the echo-server's CPU goes under wrk, by component (perf; MODE=A, R or C).
profile-echo:
	e2e/bench/profile-echo $(or $(MODE),C)

## Where a traced reconcile's CPU goes (perf; not in `make test`; 3 min): the benchmark's round in
## modes A and B, twice, every round's operator sampled; prints µs per reconcile by component.
profile-operator:
	e2e/bench/run --modes AB --rounds 2 --load-rounds 0 --out target/profile-operator --perf target/profile-operator/perf
	python3 e2e/bench/profile_operator.py target/profile-operator/results.json target/profile-operator/perf

## How many heap allocations a reconcile makes at 1,000 and 10,000 objects, and where (heaptrack;
## not in `make test`; about 5 min): bench-scale's round in mode A, allocations per reconcile by site.
profile-allocations:
	e2e/bench/count-allocations

bench-smoke:
	e2e/bench/run --smoke

## The main job without a cluster: the whole system on loopback, left running.
up:
	e2e/up

down:
	e2e/down

offline: $(VENV)/.installed
	$(VENV)/bin/python -m pytest -q e2e/offline e2e/selftest

# The validators live in a virtualenv under target/, rebuilt when the pins change.
$(VENV)/.installed: e2e/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r e2e/requirements.txt
	touch $@
