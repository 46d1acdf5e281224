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

# docker_build IMAGE CONTEXT_DIR [DOCKERFILE]: docker build with BuildKit and the host network,
# its log in target/kind, the end of it shown if it fails.
docker_build() {
    local image="$1" context="$2" dockerfile="${3:-$2/Dockerfile}" logfile
    logfile="$KIND_DIR/build-$(tr -c 'a-zA-Z0-9.\n' - <<<"${image##*/}").log"
    log "image $image"
    DOCKER_BUILDKIT=1 "${DOCKER[@]}" build --network host -f "$dockerfile" -t "$image" "$context" \
        >"$logfile" 2>&1 || {
        tail -30 "$logfile" >&2
        die "docker build of $image failed (log: ${logfile#"$E2E_ROOT/"})"
    }
}

# distroless_base DIR ROOTFS: what every distroless image holds, taken from the Debian root
# filesystem ROOTFS: CA certificates, tzdata, os-release, nsswitch.conf and services, an
# /etc/passwd with nonroot = 65532 and its home, /tmp. No shell, no package manager.
distroless_base() {
    local dir="$1" from="$2"
    mkdir -p "$dir"/{etc/ssl/certs,usr/share,home/nonroot,tmp}
    cp "$from/etc/ssl/certs/ca-certificates.crt" "$dir/etc/ssl/certs/"
    cp -a "$from/usr/share/zoneinfo" "$dir/usr/share/"
    cp "$from/etc/os-release" "$from/etc/nsswitch.conf" "$from/etc/services" "$dir/etc/"
    printf '%s\n' root:x:0:0:root:/root:/sbin/nologin nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin \
        nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin >"$dir/etc/passwd"
    printf '%s\n' root:x:0: nobody:x:65534: nonroot:x:65532: >"$dir/etc/group"
    chown 65532:65532 "$dir/home/nonroot"
    chmod 1777 "$dir/tmp"
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

# What a dockerd that manages the network changes on this machine, besides iptables rules:
# IP forwarding (for IPv6 too: kind's network has an IPv6 subnet) and, with br_netfilter
# loaded, whether bridged traffic passes the firewall.
NETWORK_SETTINGS=(
    /proc/sys/net/ipv4/ip_forward
    /proc/sys/net/ipv6/conf/all/forwarding
    /proc/sys/net/ipv6/conf/default/forwarding
    /proc/sys/net/bridge/bridge-nf-call-iptables
    /proc/sys/net/bridge/bridge-nf-call-ip6tables
)

# start_kind_docker [--no-network]: the kind mode's dockerd, unless one already answers.
# With a network (the default) it has the default bridge and its own iptables rules: Tilt's
# image builds fetch crates, and kind puts its node on a bridge network of its own. This
# machine's firewall, forwarding settings and bridges are noted first, and put back and
# checked by stop_kind_docker.
start_kind_docker() {
    local mode=network
    [[ "${1:-}" == --no-network ]] && mode=no-network
    if docker_answers; then
        # One without a network serves a request for none; otherwise it is restarted with one.
        [[ "$mode" == no-network || "$(cat "$KIND_RUN/mode" 2>/dev/null)" == network ]] && return 0
        stop_kind_docker
    fi
    mkdir -p "$KIND_RUN"
    echo "$mode" >"$KIND_RUN/mode"
    local network=(--iptables=false --ip-forward=false --bridge=none)
    if [[ "$mode" == network ]]; then
        network=()
        firewall_save iptables >"$KIND_RUN/iptables.saved"
        firewall_save ip6tables >"$KIND_RUN/ip6tables.saved"
        network_settings >"$KIND_RUN/settings.saved"
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
    # Inserted at the top, so the TCP reset ends up first. IPv6: dockerd 20.10 leaves
    # ip6tables alone, so the rules go straight into FORWARD.
    local proto
    for proto in "${KIND_REJECTS[@]}"; do
        # shellcheck disable=SC2086 # the rule's own arguments
        iptables -I DOCKER-USER -i br-+ ! -o br-+ -m comment --comment e2e-kind $proto
        # shellcheck disable=SC2086
        ip6tables -I FORWARD -i br-+ ! -o br-+ -m comment --comment e2e-kind $proto
    done
}
KIND_REJECTS=("-j REJECT" "-p tcp -j REJECT --reject-with tcp-reset")

# stop_kind_docker: stops the dockerd (its containers first), puts the firewall, the
# forwarding settings and the bridges back as start_kind_docker found them, and checks that
# they are, and that none of its processes is left; non-zero, saying what, if not.
stop_kind_docker() {
    local pid status=0
    if pid="$(cat "$KIND_RUN/dockerd.pid" 2>/dev/null)"; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -KILL "$pid" 2>/dev/null; then
            log "dockerd did not stop within 30 s of SIGTERM: killed"
            status=1
        fi
    fi
    rm -f "$KIND_RUN/mode"
    # dockerd's containerd and the containers' shims run under its exec root.
    if pgrep -f -- "$KIND_RUN/docker-exec" >/dev/null; then
        log "left behind by dockerd: $(pgrep -a -f -- "$KIND_RUN/docker-exec" | cut -c1-120 | tr '\n' ';')"
        pkill -KILL -f -- "$KIND_RUN/docker-exec"
        status=1
    fi
    if [[ -f "$KIND_RUN/iptables.saved" ]]; then
        iptables-restore <"$KIND_RUN/iptables.saved" || status=1
        ip6tables-restore <"$KIND_RUN/ip6tables.saved" || status=1
        local setting value
        while read -r setting value; do
            echo "$value" >"$setting" || status=1
        done <"$KIND_RUN/settings.saved"
        if ! diff <(firewall_rules) "$KIND_RUN/firewall.before" >&2 ||
            ! diff <(settings_now "$KIND_RUN/settings.saved") "$KIND_RUN/settings.saved" >&2; then
            log "the firewall or forwarding is not as it was before the kind mode's dockerd started (diff above)"
            status=1
        fi
        rm -f "$KIND_RUN"/{iptables,ip6tables,settings}.saved "$KIND_RUN/firewall.before"
    fi
    # The bridges dockerd made for its networks outlive it.
    if [[ -f "$KIND_RUN/bridges.saved" ]]; then
        local link
        for link in $(new_bridges); do
            ip link delete "$link" 2>/dev/null || true
        done
        if [[ -n "$(new_bridges)" ]]; then
            log "bridges left behind: $(new_bridges | tr '\n' ' ')"
            status=1
        fi
        rm -f "$KIND_RUN/bridges.saved"
    fi
    return "$status"
}

docker_answers() { [[ -S "$KIND_SOCK" ]] && "${DOCKER[@]}" info >/dev/null 2>&1; }
bridges() { ip -o link show type bridge | awk -F': ' '{print $2}'; }
new_bridges() { bridges | grep -vxF -f "$KIND_RUN/bridges.saved"; }
# The tables the kind mode's dockerd may change, saved, put back and compared.
FIREWALL_TABLES=(filter nat mangle)
# firewall_save iptables|ip6tables: each table named even when it does not exist yet: a
# restore leaves alone a table its save did not list, and on a fresh machine dockerd creates
# the filter and nat tables (a plain iptables-save lists none there; `-t TABLE` prints an
# absent table as empty).
firewall_save() {
    local table
    for table in "${FIREWALL_TABLES[@]}"; do "$1-save" -t "$table" || return 1; done
}
firewall_rules() {
    local table
    for table in "${FIREWALL_TABLES[@]}"; do iptables -t "$table" -S; done
    for table in "${FIREWALL_TABLES[@]}"; do ip6tables -t "$table" -S; done
}
# settings_now FILE: the current values of the settings FILE lists (as network_settings writes it).
settings_now() {
    local setting
    while read -r setting _; do echo "$setting $(cat "$setting")"; done <"$1"
}
network_settings() {
    local setting
    for setting in "${NETWORK_SETTINGS[@]}"; do
        [[ -f "$setting" ]] && echo "$setting $(cat "$setting")"
    done
    return 0
}

