"""Keys removed or renamed between kfinstall releases: each fails loudly and names its release.

Keys are dotted paths in kfinstall.yaml. A rename says where the value moved; a removal says why.
"""

from __future__ import annotations

from typing import Any

from installer.config.problems import Problems

# path -> (release that removed it, replacement path or None, explanation)
REMOVED_KEYS: dict[str, tuple[str, str | None, str]] = {
    "spec.kubeflowVersion": ("kfinstall 0.1.0", "spec.channel", "versions are chosen by release channel"),
    "spec.kubernetes.kubeadmVersion": (
        "kfinstall 0.1.0",
        "spec.kubernetes.version",
        "one version for kubeadm, kubelet and kubectl",
    ),
    "spec.gpu.driverVersion": (
        "kfinstall 0.1.0",
        "spec.gpu.driverBranch",
        "drivers are pinned by branch; the channel picks the patch",
    ),
    "spec.gpu.operator": ("kfinstall 0.1.0", "spec.gpu.stack", "gpu-operator or device-plugin is one choice"),
    "spec.storage.heketi": (
        "kfinstall 0.1.0",
        None,
        "Heketi is archived upstream; spec.storage.gluster builds the volume with Ansible",
    ),
    "spec.storage.default": ("kfinstall 0.1.0", "spec.storage.defaultClass", "renamed for clarity"),
    "spec.auth.oidcAuthservice": (
        "kfinstall 0.1.0",
        None,
        "Kubeflow 1.9 replaced oidc-authservice; JupyterHub logs in with LDAP",
    ),
    "spec.networking.metallb.configMap": (
        "kfinstall 0.1.0",
        "spec.networking.metallb.addresses",
        "MetalLB >= 0.13 is configured by CRDs",
    ),
}


def _lookup(data: Any, dotted: str) -> bool:
    node = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def check_removed_keys(data: Any, display: str, problems: Problems, position: Any = None) -> set[str]:
    """Record every removed key present in `data`; returns their paths so the model skips them."""
    found = set()
    for path, (release, replacement, why) in REMOVED_KEYS.items():
        if not _lookup(data, path):
            continue
        found.add(path)
        where = position(tuple(path.split("."))) if position else (None, None)
        fix = f"rename it to {replacement}" if replacement else "delete the key"
        problems.error(display, path, f"was removed in {release} ({why})", fix, line=where[0], column=where[1])
    return found


def drop_keys(data: dict[str, Any], paths: set[str]) -> None:
    """Remove `paths` from `data` in place, so one removed key gives one message, not two."""
    for path in paths:
        *parents, leaf = path.split(".")
        node: Any = data
        for part in parents:
            node = node[part]
        node.pop(leaf, None)
