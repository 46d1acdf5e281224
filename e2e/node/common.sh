# Shared by the node mode's scripts (e2e/node/*). Sourced, never run.
# Everything it makes lives under target/node: the Debian root filesystem the stand-in images
# are made from (kept between runs), and one run's daemons, state and logs (target/node/run,
# removed by e2e/node/down).
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"

NODE_DIR="$E2E_ROOT/target/node"
NODE_RUN="$NODE_DIR/run"
# E2E_DOCKER_SOCK: build the images into another dockerd (the kind mode's, e2e/kind/images).
DOCKER_SOCK="${E2E_DOCKER_SOCK:-$NODE_RUN/docker.sock}"
CONTAINERD_SOCK="$NODE_RUN/containerd.sock"
# Debian's docker CLI (20.10) builds with BuildKit by itself; a newer CLI elsewhere on PATH
# would want the buildx plugin instead.
DOCKER=(/usr/bin/docker --host "unix://$DOCKER_SOCK")

# The Debian packages the node mode runs (installed by e2e/node/up when missing, as root).
NODE_PACKAGES=(docker.io containerd runc debootstrap containernetworking-plugins iptables conntrack iproute2)

# The rules the node mode adds to this machine's firewall: e2e/node/up inserts them,
# e2e/node/down deletes them (each is split into iptables arguments).
#  - The bridge plugin turns IP forwarding on for its gateway: nothing is forwarded from cni0
#    to another interface, so the pods' traffic stays on this machine.
#  - Pod to pod across cni0 is accepted even where the FORWARD policy is DROP, as Docker sets
#    it on any machine where its daemon manages iptables (the kind mode's does).
#  - A connection to a Service address made before kube-proxy has a rule for it would leave by
#    the default route (the API server's OTLP exporter starts before Jaeger has a pod, and
#    kept such a connection): it is refused instead, and retried through the rule.
NODE_FIREWALL_RULES=(
    "FORWARD -i cni0 -o cni0 -m comment --comment e2e-node -j ACCEPT"
    "FORWARD -i cni0 ! -o cni0 -m comment --comment e2e-node -j DROP"
    "OUTPUT -d 10.96.0.0/16 -m comment --comment e2e-node -j REJECT"
)

need_root() { (($(id -u) == 0)) || die "the node mode runs daemons, mounts and network namespaces: run it as root"; }

# need_disk GIB: at least GIB GiB free where target/node lives (images, the build cache,
# containerd's copies), or a clear error now instead of a node that cannot start pods later.
need_disk() {
    local free_kib
    mkdir -p "$E2E_ROOT/target"
    free_kib="$(df --output=avail -k "$E2E_ROOT/target" | tail -1)"
    ((free_kib >= $1 * 1024 * 1024)) \
        || die "the node mode needs $1 GiB free under target/; $((free_kib / 1024 / 1024)) GiB are"
}

install_packages() {
    local missing=() package
    for package in "${NODE_PACKAGES[@]}"; do
        dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
    done
    ((${#missing[@]} == 0)) && return 0
    log "installing ${missing[*]} from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# node_start NAME COMMAND...: a daemon in its own session, pid and log under target/node/run.
node_start() {
    local name="$1"
    shift
    mkdir -p "$NODE_RUN/pids" "$NODE_RUN/logs"
    setsid "$@" >"$NODE_RUN/logs/$name.log" 2>&1 </dev/null &
    echo $! >"$NODE_RUN/pids/$name.pid"
}

# node_stop NAME: SIGTERM to its group, SIGKILL after 15 s.
node_stop() {
    local pidfile="$NODE_RUN/pids/$1.pid" pid
    [[ -f "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 75); do
        kill -0 -- "-$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

start_docker() {
    [[ -S "$DOCKER_SOCK" ]] && "${DOCKER[@]}" info >/dev/null 2>&1 && return 0
    node_start dockerd dockerd --data-root "$NODE_DIR/docker" --exec-root "$NODE_RUN/docker-exec" \
        --host "unix://$DOCKER_SOCK" --pidfile "$NODE_RUN/docker.pid" --iptables=false --ip-forward=false --bridge=none
    wait_for dockerd 60 "${DOCKER[@]}" info
}
