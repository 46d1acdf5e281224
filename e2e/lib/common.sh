# Shared by e2e/up, e2e/down, e2e/run and e2e/test. Sourced, never run.
# Everything the harness makes lives under target/: binaries in target/e2e-bin (kept
# between runs), one run's state, logs and keys in target/e2e (removed by e2e/down).

E2E_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
E2E_BIN="$E2E_ROOT/target/e2e-bin"
# E2E_STATE_DIR runs a second harness beside the first (ports are picked free each time).
E2E_STATE="${E2E_STATE_DIR:-$E2E_ROOT/target/e2e}"
E2E_VENV="$E2E_ROOT/target/venv"
# The Python these scripts run (e2e/lib/render.py, e2e/bench/bench.py) imports the shared
# package e2e/e2elib by name; pytest finds it through e2e/pytest.ini instead.
case ":${PYTHONPATH:-}:" in
*":$E2E_ROOT/e2e:"*) ;;
*) export PYTHONPATH="$E2E_ROOT/e2e${PYTHONPATH:+:$PYTHONPATH}" ;;
esac

log() { printf 'e2e: %s\n' "$*" >&2; }
die() { printf 'e2e: error: %s\n' "$*" >&2; exit 1; }

# wait_for DESCRIPTION SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
    local what="$1" seconds="$2"
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "$what did not become ready within ${seconds}s"
            return 1
        fi
        sleep 0.5
    done
}

# print_log_tails DIR LINES: the last LINES lines of every log in DIR, to stderr, for a run
# that failed.
print_log_tails() {
    local logfile
    [[ -d "$1" ]] || return 0
    for logfile in "$1"/*.log; do
        printf '\n===== last lines of %s =====\n' "${logfile#"$E2E_ROOT/"}" >&2
        tail -n "$2" "$logfile" >&2
    done
}

# disk_report: the free space on target/'s disk and what takes most of it, for a failed step
# (CI machines share their disk, and a full one fails deep inside whatever writes next).
disk_report() {
    log "disk: $(df -h --output=avail,size "$E2E_ROOT/target" 2>/dev/null | tail -1 | awk '{print $1 " free of " $2}')"
    du -shx "$E2E_ROOT"/target/* "${GOCACHE:-$HOME/.cache/go-build}" "$HOME/go/pkg/mod" 2>/dev/null |
        sort -h | tail -6 | sed 's/^/e2e: disk:   /' >&2
}

# The Jaeger image deploy/40-jaeger.yaml names (the kind mode builds it).
jaeger_image() { sed -n 's/^ *image: *\(jaegertracing\/jaeger:[^ ]*\).*/\1/p' "$E2E_ROOT/deploy/40-jaeger.yaml"; }

# The Python environment for the tests (PyYAML, pytest), shared with the offline checks.
ensure_venv() {
    make -C "$E2E_ROOT" --no-print-directory target/venv/.installed >&2
}
