"""Who may mount the shared storage, and values that reach the storage roles' files (issue #11, items 6, 8).

The NFS export and the Gluster volume serve the cluster's own hosts plus spec.storage.*.allowedClients;
kfinstall refuses, with exit 2 naming the key, an entry that would open them to everyone ('*', a
wildcard, a /0 network) and any path or option holding a newline or another control character, which
would add a line to /etc/exports or ganesha.conf.

Why no_root_squash stays the default (the mildest squash that works): csi-driver-nfs creates, archives and
removes each volume's subdirectory as root (pkg/nfs/controllerserver.go: os.MkdirAll, rename to
archived-*, os.RemoveAll), and the kubelet applies fsGroup with chown/chmod as root; csi-driver-nfs's
docs/driver-parameters.md ("When to set mountPermissions") says the export must allow that chown
(no_root_squash) or the mount fails. nfs-subdir-external-provisioner users hit the same mkdir
"permission denied" under root_squash (kubernetes-sigs/nfs-subdir-external-provisioner#34, #98).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from installer.cli import main
from installer.config.load import load
from installer.config.problems import InvalidConfig


def _problems(site: Path) -> list[str]:
    with pytest.raises(InvalidConfig) as caught:
        load(site)
    return caught.value.lines()


def _one_problem_for(lines: list[str], key: str) -> str:
    matching = [line for line in lines if f": {key}: " in line]
    assert len(matching) == 1, "\n".join(lines)
    return matching[0]


BAD_VALUES = [
    # (key under spec.storage, value, words the message must hold)
    ("nfs.exportPath", "/srv/nfs\n/ *(rw,no_root_squash)", "newline or another control character"),
    ("nfs.exportPath", "/srv/nfs\t", "newline or another control character"),
    ("nfs.exportPath", "/srv/../etc", "without '..'"),
    ("nfs.exportPath", "/", "without '..'"),
    ("nfs.exportOptions", "rw,sync\n/etc *(rw,no_root_squash)", "newline or another control character"),
    ("nfs.exportOptions", "rw,sync) *(rw", "is not an export option"),
    ("nfs.exportOptions", "rw, sync", "is not an export option"),
    ("nfs.allowedClients", ["*"], "would let every host that reaches the server in as root"),
    ("nfs.allowedClients", ["10.0.*"], "would let every host that reaches the server in as root"),
    ("nfs.allowedClients", ["0.0.0.0/0"], "is every address"),
    ("nfs.allowedClients", ["10.0.0.1/24"], "has host bits set; did you mean 10.0.0.0/24?"),
    ("nfs.allowedClients", ["node1 node2"], "is not an IP address, CIDR network or DNS name"),
    ("nfs.allowedClients", ["10.0.0.1\n/srv"], "is not an IP address, CIDR network or DNS name"),
    ("nfs.allowedClients", ["node1\n"], "is not an IP address, CIDR network or DNS name"),
    # An IPv6 zone matches no client in exports(5), ganesha or glusterd (and ip_network takes one).
    ("nfs.allowedClients", ["fe80::1%eth0"], "has an IPv6 zone"),
    ("gluster.allowedClients", ["fe80::%eth0/64"], "has an IPv6 zone"),
    ("nfs.mountOptions", ["hard\n"], "is not a mount option"),
    ("gluster.allowedClients", ["*"], "would let every host that reaches the server in as root"),
    ("gluster.volume", "-kf;id", "is not a Gluster volume name"),
    ("gluster.volume", "kf\n", "is not a Gluster volume name"),
    ("gluster.brickPath", "/data/x\nfoo", "newline or another control character"),
    ("gluster.mountPath", "mnt/gluster", "must be an absolute path"),
]


@pytest.mark.parametrize(("key", "value", "words"), BAD_VALUES,
                         ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(BAD_VALUES)])
def test_bad_storage_value_is_refused_naming_the_key(make_site, key: str, value: object, words: str) -> None:
    section, field = key.split(".")
    site = make_site(cluster={f"spec.storage.{section}.{field}": value})
    line = _one_problem_for(_problems(site), f"spec.storage.{key}" + ("[0]" if isinstance(value, list) else ""))
    assert line.startswith("error: kfinstall.yaml:") and words in line, line
    assert "Fix: correct spec.storage." in line


def test_newline_in_export_path_exits_2_on_validate(make_site, capfd, monkeypatch) -> None:
    site = make_site(cluster={"spec.storage.nfs.exportPath": "/srv/nfs\n/ *(rw)"})
    monkeypatch.delenv("KFINSTALL_INVENTORY", raising=False)
    monkeypatch.setattr("sys.argv", ["kfinstall", "inventory", "validate", "-i", str(site)])
    with pytest.raises(SystemExit) as caught:
        main()
    assert caught.value.code == 2
    err = capfd.readouterr().err
    assert "spec.storage.nfs.exportPath: '/srv/nfs\\n/ *(rw)' holds a newline or another control character" in err
    assert "Traceback" not in err


def test_allowed_clients_reach_the_roles(make_site) -> None:
    site = make_site(cluster={"spec.storage.nfs.allowedClients": ["10.20.0.0/16", "nas-gw.example.com"],
                              "spec.storage.gluster.allowedClients": ["192.0.2.7"]})
    extra = load(site).ansible_vars()
    assert extra["kf_nfs_allowed_clients"] == ["10.20.0.0/16", "nas-gw.example.com"]
    assert extra["kf_gluster_allowed_clients"] == ["192.0.2.7"]


def test_allowed_clients_default_to_none_beyond_the_cluster(make_site) -> None:
    extra = load(make_site()).ansible_vars()
    assert extra["kf_nfs_allowed_clients"] == [] and extra["kf_gluster_allowed_clients"] == []
    # The squash the storage classes need (module docstring), given to the allowed clients only.
    assert "no_root_squash" in extra["kf_nfs_export_options"].split(",")


@pytest.mark.parametrize("client", ["10.1.2.3", "10.1.0.0/16", "fd00::/64", "node-1.example.com", "2001:db8::7"])
def test_good_allowed_clients_pass(make_site, client: str) -> None:
    cfg = load(make_site(cluster={"spec.storage.nfs.allowedClients": [client]}))
    assert cfg.spec.storage.nfs.allowed_clients == [client]


@pytest.mark.parametrize(("client", "canonical"), [("2001:DB8::/32", "2001:db8::/32"),
                                                   ("10.0.0.0/255.0.0.0", "10.0.0.0/8")])
def test_a_network_in_another_spelling_is_taken_in_its_canonical_form(make_site, client: str, canonical: str) -> None:
    """Upper-case IPv6 and netmask spellings are networks, not 'host bits set'."""
    cfg = load(make_site(cluster={"spec.storage.gluster.allowedClients": [client]}))
    assert cfg.spec.storage.gluster.allowed_clients == [canonical]
