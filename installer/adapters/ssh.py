"""SSH host keys: the options every kfinstall ssh connection carries, and the check before any task.

spec.ssh.hostKeyChecking picks the policy; the keys live in <state dir>/known_hosts, a file of the
site's own (never ~/.ssh/known_hosts, which other tools and other sites share):
  accept-new  ssh's StrictHostKeyChecking=accept-new: an unknown host's key is pinned, a changed
              key is refused (ssh refuses it on every connection, not only in the check below)
  strict      StrictHostKeyChecking=yes: a host must already be pinned
  off         StrictHostKeyChecking=no against /dev/null: nothing is checked or pinned (loud)

`check_host_keys` runs before the first playbook of a run. It opens each host's SSH transport the way
Ansible will (same address, port, user and the operator's own ssh arguments, so a ProxyJump counts)
but with every authentication method switched off: the host key is verified (and pinned on first
contact) and then the login fails on purpose. No credential is offered, no command and no task runs,
on any host, until every host's key is known to be the pinned one.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from installer.config.inventory import ROLE_GROUPS
from installer.config.resolved import ClusterConfig
from installer.config.ssh import KNOWN_HOSTS, OWNED_OPTIONS, TRUST_OPTIONS, SshTarget, ssh_option_names
from installer.errors import ConfigError, PreflightError
from installer.interrupt import run_child

_STRICTNESS = {"accept-new": "accept-new", "strict": "yes", "off": "no"}
# Connection reuse for Ansible's many small commands (one TCP connection and key exchange per host).
REUSE_OPTIONS = ("-o", "ControlMaster=auto", "-o", "ControlPersist=60s")
# The check's own connection: no master to reuse (it must see the key the host presents now), and
# nothing offered to a host whose key is not yet verified.
_CHECK_OPTIONS = (
    "-o", "ControlMaster=no", "-o", "ControlPath=none", "-o", "BatchMode=yes",
    "-o", "PubkeyAuthentication=no", "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no",
    "-o", "GSSAPIAuthentication=no", "-o", "HostbasedAuthentication=no", "-o", "IdentityAgent=none",
    "-o", "ForwardAgent=no", "-o", "ClearAllForwardings=yes", "-o", "PermitLocalCommand=no",
    "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR", "-T", "-n",
)
CHECK_TIMEOUT_S = 30
_OWNED = {o.lower() for o in OWNED_OPTIONS + TRUST_OPTIONS}


@dataclass(frozen=True)
class HostKeyPolicy:
    """The site's host-key policy and the hosts it applies to (name -> how ssh reaches it)."""

    mode: str
    known_hosts: Path
    targets: dict[str, SshTarget] = field(default_factory=dict)

    @classmethod
    def of(cls, cfg: ClusterConfig) -> HostKeyPolicy:
        """The policy of a site: every host in a role group that Ansible reaches over ssh."""
        targets = {
            h.name: h.ssh
            for h in cfg.inventory.hosts
            if h.ssh is not None and not h.ssh.local and set(h.roles) & set(ROLE_GROUPS)
        }
        return cls(cfg.spec.ssh.host_key_checking, cfg.state_dir / KNOWN_HOSTS, targets)

    def ssh_options(self) -> list[str]:
        """The host-key options, first on every ssh command line (ssh keeps the first value given)."""
        known = "/dev/null" if self.mode == "off" else str(self.known_hosts)
        # ssh reads a space in a file name as a list separator: quote it (ssh_config's own quoting).
        # GlobalKnownHostsFile too: ssh also trusts /etc/ssh/ssh_known_hosts (or what an ssh_config names),
        # so under strict a host pinned there but not in the site's file would be let in.
        return [
            "-o", f"StrictHostKeyChecking={_STRICTNESS[self.mode]}", "-o", f'UserKnownHostsFile="{known}"',
            "-o", "GlobalKnownHostsFile=/dev/null",
        ]

    def ansible_ssh_args(self) -> str:
        """ANSIBLE_SSH_ARGS: Ansible puts these before every other ssh argument (see installer/config/ssh.py)."""
        return shlex.join([*self.ssh_options(), *REUSE_OPTIONS])

    def ansible_env(self) -> dict[str, str]:
        """The Ansible settings that apply the policy. Host-key checking stays on in Ansible's own terms
        (false makes Ansible add its own StrictHostKeyChecking=no): kfinstall's ssh args say it all."""
        return {
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_SSH_HOST_KEY_CHECKING": "True",  # Ansible's other name for it, which would win
            "ANSIBLE_SSH_ARGS": self.ansible_ssh_args(),
            # A reused master connection skips the host-key check: never share one with another site,
            # another policy or the operator's own Ansible runs (the default dir is one for all).
            "ANSIBLE_SSH_CONTROL_PATH_DIR": f"~/.ansible/cp/kf-{self._digest()}",
            # Empty: Ansible's own per-host socket name in that directory. Set, here or by an
            # ansible.cfg (the operator's, or one in the cwd), it would replace the directory.
            "ANSIBLE_SSH_CONTROL_PATH": "",
            # The ssh connection plugin, whatever an ansible.cfg or the shell says: paramiko ignores
            # ANSIBLE_SSH_ARGS, so the site's known_hosts would never be read.
            "ANSIBLE_TRANSPORT": "ssh",
        }

    def _digest(self) -> str:
        return hashlib.sha256(f"{self.mode}\0{self.known_hosts}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class HostKeyReport:
    mode: str
    known_hosts: str
    pinned: dict[str, list[str]] = field(default_factory=dict)  # host -> "TYPE SHA256:..." pinned by this run
    verified: list[str] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)  # left to the preflight's reachability report
    ignored: list[str] = field(default_factory=list)  # the operator's environment settings kfinstall replaces

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def check_host_keys(policy: HostKeyPolicy) -> HostKeyReport:
    """Verify every host's key against known_hosts (pinning new ones under accept-new) before any task.

    Raises PreflightError (exit 3) naming each host whose key changed, or, under strict, is not pinned.
    """
    ignored = environment_conflicts(dict(os.environ))
    if policy.mode == "off":
        return HostKeyReport(policy.mode, "/dev/null", ignored=ignored)
    policy.known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not policy.known_hosts.exists():
        policy.known_hosts.touch(mode=0o600)
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(policy.targets)))) as pool:
        checked = pool.map(lambda target: _check_one(policy, target), policy.targets.values())
        outcomes = dict(zip(policy.targets, checked, strict=True))
    report = HostKeyReport(policy.mode, str(policy.known_hosts), ignored=ignored)
    refused = []
    for name, (status, detail) in outcomes.items():
        if status == "pinned":
            report.pinned[name] = detail
        elif status == "verified":
            report.verified.append(name)
        elif status == "unreachable":
            report.unreachable[name] = detail[0]
        else:
            refused.append(_refusal(policy, name, status, detail[0]))
    if refused:
        raise PreflightError("host key check refused (nothing was run on any host):\n  " + "\n  ".join(refused))
    return report


def environment_conflicts(environ: dict[str, str]) -> list[str]:
    """The operator's own Ansible environment against kfinstall's host-key settings.

    -o options kfinstall owns in ANSIBLE_SSH_COMMON_ARGS/_EXTRA_ARGS would be silently ignored by ssh:
    refused (exit 2). ANSIBLE_SSH_ARGS and the host-key-checking switches are replaced for kfinstall's
    runs: returned, so the preflight says so instead of ignoring them silently."""
    for name in ("ANSIBLE_SSH_COMMON_ARGS", "ANSIBLE_SSH_EXTRA_ARGS"):
        try:
            owned = [o for o in ssh_option_names(shlex.split(environ.get(name, ""))) if o.lower() in _OWNED]
        except ValueError as exc:
            raise ConfigError(
                f"{name} in your environment cannot be split into ssh arguments ({exc}). Fix: balance its quotes"
            ) from None
        if owned:
            raise ConfigError(
                f"{name} in your environment sets -o {owned[0]}, which kfinstall sets itself on every "
                f"connection or which would trust keys from outside the site's known_hosts. Fix: unset it or "
                "remove that option; host keys are checked as spec.ssh.hostKeyChecking says"
            )
    replaced = (
        "ANSIBLE_SSH_ARGS", "ANSIBLE_HOST_KEY_CHECKING", "ANSIBLE_SSH_HOST_KEY_CHECKING", "ANSIBLE_SSH_CONTROL_PATH",
        "ANSIBLE_SSH_CONTROL_PATH_DIR", "ANSIBLE_TRANSPORT",
    )
    return [f"{name}={environ[name]!r}" for name in replaced if name in environ]


def _refusal(policy: HostKeyPolicy, host: str, status: str, lookup: str) -> str:
    known = shlex.quote(str(policy.known_hosts))
    if status == "changed":
        return (
            f"{host}: its SSH host key CHANGED since it was pinned in {policy.known_hosts} (a reinstalled host, "
            "or someone in between). Check the new key on the host's console "
            "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub); if it is right, forget the old one with "
            f"`ssh-keygen -R {shlex.quote(lookup)} -f {known}` and run again: the new key is pinned on first contact"
        )
    return (
        f"{host}: no SSH host key is pinned for {lookup} and spec.ssh.hostKeyChecking is strict. Add the "
        f"host's key to {policy.known_hosts} (`ssh-keyscan {_keyscan_args(lookup)} >> {known}`, then check "
        f"`ssh-keygen -lf {known}` against the host's console), or pin it on first contact with accept-new"
    )


def _keyscan_args(lookup: str) -> str:
    if lookup.startswith("[") and "]:" in lookup:
        address, port = lookup[1:].split("]:", 1)
        return f"-p {port} {shlex.quote(address)}"
    return shlex.quote(lookup)


def _ssh_argv(policy: HostKeyPolicy, target: SshTarget, *extra: str) -> list[str]:
    argv = ["ssh", *policy.ssh_options(), *extra]
    if target.port is not None:
        argv += ["-o", f"Port={target.port}"]
    if target.user:
        argv += ["-o", f"User={target.user}"]
    return [*argv, *target.args(dict(os.environ)), "--", target.address]


def _lookup_name(policy: HostKeyPolicy, target: SshTarget) -> str:
    """The name ssh files the host's key under: HostKeyAlias, else the HostName, with [ ]:port off port 22."""
    proc = run_child(_ssh_argv(policy, target, "-G"), timeout=CHECK_TIMEOUT_S)
    config = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)
    name = config.get("hostkeyalias") or config.get("hostname") or target.address
    port = config.get("port", "22")
    return name if port == "22" or config.get("hostkeyalias") else f"[{name}]:{port}"


def pinned_keys(known_hosts: Path, lookup: str) -> list[str]:
    """'TYPE SHA256:...' of every key pinned for `lookup` (hashed entries included)."""
    proc = run_child(["ssh-keygen", "-l", "-F", lookup, "-f", str(known_hosts)], timeout=CHECK_TIMEOUT_S)
    keys = []
    for line in proc.stdout.splitlines():
        parts = line.split()
        if not line.startswith("#") and len(parts) >= 3:
            keys.append(f"{parts[-2]} {parts[-1]}")
    return keys


def _check_one(policy: HostKeyPolicy, target: SshTarget) -> tuple[str, list[str]]:
    """(status, detail): pinned (new fingerprints) | verified | changed | unknown (lookup name) | unreachable."""
    lookup = _lookup_name(policy, target)
    before = pinned_keys(policy.known_hosts, lookup)
    try:
        # A stop signal ends the wait (and this ssh) at once: Interrupted, under the run's lock.
        proc = run_child([*_ssh_argv(policy, target, *_CHECK_OPTIONS), "true"], timeout=CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "unreachable", [f"no SSH answer within {CHECK_TIMEOUT_S} s"]
    if "Host key verification failed" in proc.stderr:
        return ("changed" if before else "unknown"), [lookup]
    # Every authentication method is off, so a host that verified is one that refused the login
    # (or, were it to allow logins without any, ran `true`). Anything else never got that far:
    # the TCP connection or the proxy failed, which the preflight's reachability check reports.
    if proc.returncode != 0 and "Permission denied" not in proc.stderr:
        return "unreachable", [_last_line(proc.stderr)]
    after = pinned_keys(policy.known_hosts, lookup)
    new = [key for key in after if key not in before]
    return ("pinned", new) if new else ("verified", [])


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no answer"
