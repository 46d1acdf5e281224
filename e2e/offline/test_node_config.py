"""The node mode's kubeadm configuration (e2e/node/kubeadm_config.py), as kubeadm receives it:
the kind patch merged in, and a kubelet that never taints its own node over disk space."""

import yaml

from node import kubeadm_config


def documents(capsys):
    kubeadm_config.main("v1.37.2", "192.0.2.2", "unix:///run/containerd.sock")
    return {doc["kind"]: doc for doc in yaml.safe_load_all(capsys.readouterr().out)}


def test_the_kubelet_evicts_on_memory_only_and_keeps_every_image(capsys):
    # CI's disk, shared with target/, was under the default 15 % free: the node tainted
    # itself with disk-pressure and no pod was ever scheduled.
    kubelet = documents(capsys)["KubeletConfiguration"]
    hard = kubelet["evictionHard"]
    for signal in ("nodefs.available", "nodefs.inodesFree", "imagefs.available", "imagefs.inodesFree"):
        assert hard[signal] == "0%", signal
    assert hard["memory.available"] == "100Mi"
    assert kubelet["imageGCHighThresholdPercent"] == 100


def test_the_api_server_gets_the_tracing_flag_from_the_kind_patch(capsys):
    cluster = documents(capsys)["ClusterConfiguration"]
    args = {a["name"]: a["value"] for a in cluster["apiServer"]["extraArgs"]}
    assert args["tracing-config-file"].endswith("apiserver-tracing.yaml")
