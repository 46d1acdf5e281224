# Shared by the kind mode's scripts (e2e/kind/*). Sourced, never run.
# Everything it makes lives under target/kind: a dockerd of its own (state in target/kind/docker,
# socket and logs in target/kind/run) whose default OCI runtime is e2e/kind/runc-no-sys-resource,
# the Debian root filesystems, the images kind needs and the cluster's kubeconfig.
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

KIND_DIR="$E2E_ROOT/target/kind"
KIND_RUN="$KIND_DIR/run"
KIND_SOCK="$KIND_RUN/docker.sock"
# Debian's docker CLI (20.10): kind and Tilt shell out to `docker`, and a newer CLI elsewhere on
# PATH would want the buildx plugin for builds.
DOCKER=(/usr/bin/docker --host "unix://$KIND_SOCK")
KIND_CLUSTER=echo-tracing
KIND_KUBECONFIG="$KIND_DIR/kubeconfig"
KUBERNETES_VERSION=v1.37.2
# The tags kind v0.33.0's own images carry (its images/base Makefile and pkg/build/nodeimage).
KIND_BASE_IMAGE=echo-tracing/kind-base:v20260820-69b56db7-local
KIND_NODE_IMAGE=echo-tracing/kind-node:$KUBERNETES_VERSION
# kind's image recipes and the kube-network-policies source kindnetd needs (../shared/tools/kind).
KIND_SHARED="$E2E_ROOT/../shared/tools/kind"

KIND_PACKAGES=(docker.io jq debootstrap iptables libseccomp-dev pkg-config)

need_root() { (($(id -u) == 0)) || die "the kind mode runs a dockerd and kind's node containers: run it as root"; }

install_kind_packages() {
    local missing=() package
    for package in "${KIND_PACKAGES[@]}"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing ${missing[*]} from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# image_from_dir NAME DIR [--change …]: a one-layer image of DIR's contents.
image_from_dir() {
    local name="$1" dir="$2"
    shift 2
    tar --numeric-owner -C "$dir" -c . | "${DOCKER[@]}" import "$@" - "$name" >/dev/null
}

# debootstrap_rootfs SUITE DIR [PACKAGES]: a minbase Debian SUITE in DIR, kept between runs.
debootstrap_rootfs() {
    local suite="$1" dir="$2" include="${3:-}"
    [[ -f "$dir/.complete" ]] && return 0
    log "debootstrap: Debian $suite into ${dir#"$E2E_ROOT/"} (first time only)"
    rm -rf "$dir"
    mkdir -p "$KIND_DIR"
    debootstrap --variant=minbase ${include:+--include="$include"} \
        "$suite" "$dir" http://deb.debian.org/debian >"$KIND_DIR/debootstrap-$(basename "$dir").log"
    touch "$dir/.complete"
}

# start_kind_docker [--no-network]: the kind mode's dockerd, unless one already answers.
# With a network (the default) it has the default bridge and its own iptables rules: Tilt's
# image builds fetch crates, and kind puts its node on a bridge network of its own. This
# machine's firewall and IP forwarding are saved first and put back by stop_kind_docker.
start_kind_docker() {
    local mode=network
    [[ "${1:-}" == --no-network ]] && mode=no-network
    if [[ -S "$KIND_SOCK" ]] && "${DOCKER[@]}" info >/dev/null 2>&1; then
        # One without a network serves a request for none; otherwise it is restarted with one.
        [[ "$mode" == no-network || "$(cat "$KIND_RUN/mode" 2>/dev/null)" == network ]] && return 0
        stop_kind_docker
    fi
    mkdir -p "$KIND_RUN"
    echo "$mode" >"$KIND_RUN/mode"
    local network=(--iptables=false --ip-forward=false --bridge=none)
    if [[ "$mode" == network ]]; then
        network=()
        iptables-save >"$KIND_RUN/iptables.saved"
        cat /proc/sys/net/ipv4/ip_forward >"$KIND_RUN/ip_forward.saved"
        bridges >"$KIND_RUN/bridges.saved"
        firewall_rules >"$KIND_RUN/firewall.before"
    fi
    cat >"$KIND_RUN/daemon.json" <<JSON
{"runtimes": {"no-sys-resource": {"path": "$E2E_ROOT/e2e/kind/runc-no-sys-resource"}},
 "default-runtime": "no-sys-resource"}
JSON
    setsid dockerd --config-file "$KIND_RUN/daemon.json" --data-root "$KIND_DIR/docker" \
        --exec-root "$KIND_RUN/docker-exec" --host "unix://$KIND_SOCK" --pidfile "$KIND_RUN/dockerd.pid" \
        "${network[@]}" >"$KIND_RUN/dockerd.log" 2>&1 </dev/null &
    wait_for dockerd 60 "${DOCKER[@]}" info
    [[ "$mode" == network ]] || return 0
    # Traffic from kind's network (a br-* bridge) stays on this machine: Docker would let it
    # out through the default route. It matters beyond tidiness: the API server's exporter
    # dials the Jaeger Service before kube-proxy has a rule for it, and a connection that
    # leaves the node that way (here: to a proxy that answers HTTP 404) is kept for good.
    # Refused at once instead, it is retried, and reaches Jaeger once the Service exists.
    # The default bridge (docker0) keeps its way out: Tilt's image builds fetch crates.
    local proto
    # Inserted at the top, so the TCP reset ends up first.
    for proto in "-j REJECT" "-p tcp -j REJECT --reject-with tcp-reset"; do
        # shellcheck disable=SC2086 # the rule's own arguments
        iptables -I DOCKER-USER -i br-+ ! -o br-+ -m comment --comment e2e-kind $proto
    done
}

# stop_kind_docker: stops the dockerd (its containers first) and restores the firewall;
# non-zero if the firewall is not as it found it.
stop_kind_docker() {
    local pid
    if pid="$(cat "$KIND_RUN/dockerd.pid" 2>/dev/null)"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$KIND_RUN/mode"
    local status=0
    if [[ -f "$KIND_RUN/iptables.saved" ]]; then
        iptables-restore <"$KIND_RUN/iptables.saved"
        cat "$KIND_RUN/ip_forward.saved" >/proc/sys/net/ipv4/ip_forward
        if ! diff <(firewall_rules) "$KIND_RUN/firewall.before" >&2; then
            log "the firewall is not as it was before the kind mode's dockerd started (diff above)"
            status=1
        fi
        rm -f "$KIND_RUN/iptables.saved" "$KIND_RUN/ip_forward.saved" "$KIND_RUN/firewall.before"
    fi
    # The bridges dockerd made for its networks outlive it.
    if [[ -f "$KIND_RUN/bridges.saved" ]]; then
        local link
        for link in $(bridges | grep -vxF -f "$KIND_RUN/bridges.saved"); do
            ip link delete "$link" 2>/dev/null || true
        done
        rm -f "$KIND_RUN/bridges.saved"
    fi
    return "$status"
}

firewall_rules() { for table in filter nat mangle; do iptables -t "$table" -S; done; }

bridges() { ip -o link show type bridge | awk -F': ' '{print $2}'; }
