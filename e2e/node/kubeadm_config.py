"""kubeadm's configuration for the node mode, on stdout: InitConfiguration,
ClusterConfiguration, KubeletConfiguration and KubeProxyConfiguration for this machine, with
the kubeadm ClusterConfiguration patch of deploy/kind/cluster.yaml merged in (read from that
file, so the patch users run is the one tested).

    kubeadm_config.py VERSION NODE_IP CRI_SOCKET"""

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
API = "kubeadm.k8s.io/v1beta4"


def merge(base, patch):
    """A strategic merge as kind applies it to these fields: maps merge, extraArgs (a list of
    {name, value}) merge by name, other lists are replaced."""
    for key, value in patch.items():
        if key == "extraArgs":
            merged = {a["name"]: a for a in base.get(key, [])}
            merged.update({a["name"]: a for a in value})
            base[key] = list(merged.values())
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def kind_patch():
    cluster = yaml.safe_load((ROOT / "deploy" / "kind" / "cluster.yaml").read_text())
    patches = [yaml.safe_load(p) for node in cluster["nodes"] for p in node.get("kubeadmConfigPatches", [])]
    found = [p for p in patches if p["kind"] == "ClusterConfiguration" and p["apiVersion"] == API]
    if len(found) != 1:
        raise SystemExit(f"deploy/kind/cluster.yaml has {len(found)} {API} ClusterConfiguration patches")
    patch = dict(found[0])
    del patch["apiVersion"], patch["kind"]
    return patch


def main(version, node_ip, cri_socket):
    init = {
        "apiVersion": API,
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": node_ip, "bindPort": 6443},
        "nodeRegistration": {"criSocket": cri_socket, "imagePullPolicy": "Never", "taints": []},
    }
    cluster = {
        "apiVersion": API,
        "kind": "ClusterConfiguration",
        "kubernetesVersion": version,
        "clusterName": "echo-tracing",
        # kind's defaults: the Jaeger ClusterIP of deploy/kind/apiserver-tracing.yaml is in it.
        "networking": {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/16"},
    }
    merge(cluster, kind_patch())
    kubelet = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",  # no systemd here
        "containerRuntimeEndpoint": cri_socket,
        "failSwapOn": False,
        # This machine has cgroup v1, which the kubelet refuses by default since 1.35.
        "failCgroupV1": False,
        "podCIDR": "10.244.0.0/24",
        # A test node shares its disk with the build (target/ alone is over 20 GiB): at the
        # kubelet's default thresholds (imagefs under 15 % free) it taints itself with
        # disk-pressure, schedules nothing and deletes images it cannot pull back. As kind's
        # nodes do, evict on memory only and never collect images.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "0%",
            "nodefs.inodesFree": "0%",
            "imagefs.available": "0%",
            "imagefs.inodesFree": "0%",
        },
        "imageGCHighThresholdPercent": 100,
    }
    proxy = {"apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration", "mode": "iptables",
             # This machine's sysctls are not kube-proxy's to change.
             "conntrack": {"maxPerCore": 0}}
    print(yaml.safe_dump_all([init, cluster, kubelet, proxy], sort_keys=False), end="")


if __name__ == "__main__":
    main(*sys.argv[1:])
