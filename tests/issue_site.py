"""The site the issue describes, shared by the plan tests of tests/unit and tests/playbooks."""

from __future__ import annotations

from typing import Any

# NFS- and Gluster-only hosts: 1 control plane, 5 workers, 1 NFS server, 3 gluster bricks.
STORAGE_ONLY_HOSTS: dict[str, Any] = {
    "all": {
        "hosts": {name: {"ansible_host": f"192.0.2.{i}"} for i, name in enumerate(
            ["cp1", "n1", "n2", "n3", "n4", "n5", "nfs1", "g1", "g2", "g3"], start=10)},
        "children": {
            "kube_control_plane": {"hosts": {"cp1": None}},
            "kube_node": {"hosts": dict.fromkeys(["n1", "n2", "n3", "n4", "n5"])},
            "nfs_server": {"hosts": {"nfs1": None}},
            "gluster": {"hosts": dict.fromkeys(["g1", "g2", "g3"])},
        },
    }
}
