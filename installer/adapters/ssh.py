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

Jump hosts (a Kubespray `bastion` group, or -J / -o ProxyJump in the inventory's ssh args) are checked
first, the same way and against the same known_hosts. ssh hands none of its -o options to the ssh it
starts for a ProxyJump hop, only -F (OpenSSH ssh.c, measured with OpenSSH 9.2: "Setting implicit
ProxyCommand from ProxyJump: ssh -l u -p 2222 -F <file> -W '[%h]:%p' <jump>"), so a site with jump hosts
gets an ssh config file of its own in the state directory (<state>/ssh_config, passed with -F on every
connection): the host-key policy for every host, jumps included, then the bastion's routes, then the
operator's ~/.ssh/config and /etc/ssh/ssh_config (ssh keeps the first value it reads, so kfinstall's
host-key settings win and the rest of the operator's configuration still applies).
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from installer.config.inventory import ROLE_GROUPS, Inventory
from installer.config.resolved import ClusterConfig
from installer.config.ssh import (
    EXECUTABLE_VARS,
    KNOWN_HOSTS,
    SshTarget,
    args_options,
    jump_hosts,
    option_problem,
    proxy_command,
    proxy_ssh_destination,
)
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
# The operator's ssh arguments from the environment, checked like the inventory's (environment_conflicts) and
# handed to Ansible as checked: set here, they also beat an ansible.cfg's ssh_common_args & co., never checked.
ARGS_ENV = ("ANSIBLE_SSH_COMMON_ARGS", "ANSIBLE_SSH_EXTRA_ARGS", "ANSIBLE_SFTP_EXTRA_ARGS", "ANSIBLE_SCP_EXTRA_ARGS")
# The programs Ansible runs for a connection, whatever an ansible.cfg or the shell says (the check runs these).
EXECUTABLES_ENV = {f"ANSIBLE_{var.removeprefix('ansible_').upper()}": program
                   for var, program in EXECUTABLE_VARS.items()}
SSH_CONFIG = "ssh_config"  # in the state directory, beside known_hosts: only for a site with jump hosts
BASTION_GROUP = "bastion"  # Kubespray's: its first host is the jump host for every host outside the group


@dataclass(frozen=True)
class HostKeyPolicy:
    """The site's host-key policy and the hosts it applies to (name -> how ssh reaches it)."""

    mode: str
    known_hosts: Path
    targets: dict[str, SshTarget] = field(default_factory=dict)
    # Jump hosts, checked before any target: the bastion by its inventory name, ProxyJump hops as "jump HOP".
    jumps: dict[str, SshTarget] = field(default_factory=dict)
    bastion: SshTarget | None = None  # Kubespray's bastion host, when the inventory has one
    proxied: tuple[str, ...] = ()  # addresses ssh reaches through the bastion (ssh_config's ProxyJump)

    @classmethod
    def of(cls, cfg: ClusterConfig) -> HostKeyPolicy:
        """The policy of a site: every host in a role group that Ansible reaches over ssh, and the jump
        hosts on the way to them."""
        targets = {
            h.name: h.ssh
            for h in cfg.inventory.hosts
            if h.ssh is not None and not h.ssh.local and set(h.roles) & set(ROLE_GROUPS)
        }
        environ = dict(os.environ)
        jumps: dict[str, SshTarget] = {}
        bastion = _bastion(cfg.inventory)
        proxied: list[str] = []
        if bastion is not None:
            jumps[bastion[0]] = bastion[1]
            # Kubespray's ssh-bastion.conf: every host outside the bastion group goes through it; a host
            # whose own ssh args say how to reach it (ProxyJump, ProxyCommand) keeps its way, as ssh
            # keeps the command line's value over a config file's.
            outside = set(targets) - set(cfg.inventory.pattern_hosts(BASTION_GROUP))
            proxied = [targets[name].address for name in sorted(outside) if not _own_route(targets[name], environ)]
        for target in targets.values():
            hops = jump_hosts(target.args(environ))
            for index, hop in enumerate(hops):
                jumps.setdefault(f"jump {hop}", _hop_target(hop, hops[:index]))
        return cls(cfg.spec.ssh.host_key_checking, cfg.state_dir / KNOWN_HOSTS, targets, jumps,
                   bastion[1] if bastion else None, tuple(dict.fromkeys(proxied)))

    @property
    def ssh_config(self) -> Path:
        return self.known_hosts.parent / SSH_CONFIG

    def ssh_config_text(self) -> str:
        """<state>/ssh_config: the bastion's routes, the host-key policy for every host (ProxyJump hops
        read only this file's settings), then the operator's own ssh configuration."""
        checking, known = self._checking()
        lines = ["# Written by kfinstall on every run for this site's jump hosts (installer/adapters/ssh.py).",
                 "# Change hosts.yml or kfinstall.yaml instead: this file is replaced."]
        if self.bastion is not None and self.proxied:
            lines += [f"Host {' '.join(self.proxied)}", f"  ProxyJump {_jump_spec(self.bastion.address)}",
                      f"Host {self.bastion.address}"]
            lines += [f"  User {self.bastion.user}"] if self.bastion.user else []
            lines += [f"  Port {self.bastion.port}"] if self.bastion.port else []
            if self.bastion.identity:
                lines.append(f'  IdentityFile "{self.bastion.identity.replace("%", "%%")}"')
        lines += ["Host *", f"  StrictHostKeyChecking {checking}", f'  UserKnownHostsFile "{known}"',
                  "  GlobalKnownHostsFile /dev/null", "  VerifyHostKeyDNS no",
                  "  Include ~/.ssh/config", "  Include /etc/ssh/ssh_config"]
        return "\n".join(lines) + "\n"

    def write_ssh_config(self) -> None:
        """Write <state>/ssh_config (0600) when the site has jump hosts; kfinstall's own file, replaced."""
        if self.jumps:
            from installer.owned import write_file_atomically

            self.ssh_config.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_file_atomically(self.ssh_config, self.ssh_config_text().encode(), 0o600)

    def _checking(self) -> tuple[str, str]:
        return _STRICTNESS[self.mode], "/dev/null" if self.mode == "off" else str(self.known_hosts)

    def ssh_options(self) -> list[str]:
        """The host-key options, first on every ssh command line (ssh keeps the first value given)."""
        checking, known = self._checking()
        # ssh reads a space in a file name as a list separator: quote it (ssh_config's own quoting).
        # GlobalKnownHostsFile too: ssh also trusts /etc/ssh/ssh_known_hosts (or what an ssh_config names),
        # so under strict a host pinned there but not in the site's file would be let in.
        # With jump hosts, -F: the only setting a ProxyJump hop's ssh is given (see the module docstring).
        return [
            "-o", f"StrictHostKeyChecking={checking}", "-o", f'UserKnownHostsFile="{known}"',
            "-o", "GlobalKnownHostsFile=/dev/null", *(["-F", str(self.ssh_config)] if self.jumps else []),
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
            **EXECUTABLES_ENV,
            # Empty where the operator sets none (theirs, checked, is inherited): an ansible.cfg's never applies.
            **{name: "" for name in ARGS_ENV if not os.environ.get(name)},
        }

    def _digest(self) -> str:
        return hashlib.sha256(f"{self.mode}\0{self.known_hosts}".encode()).hexdigest()[:12]


def _bastion(inventory: Inventory) -> tuple[str, SshTarget] | None:
    """Kubespray's bastion: the first host of the `bastion` group (roles/bastion-ssh-config reads
    groups['bastion'][0]), reached as the inventory says (its address, port, user, key file)."""
    first = inventory.pattern_hosts(f"{BASTION_GROUP}[0]")
    host = next((h for h in inventory.hosts if first and h.name == first[0]), None)
    if host is None or host.ssh is None or host.ssh.local:
        return None
    return host.name, host.ssh


def _own_route(target: SshTarget, environ: dict[str, str]) -> bool:
    args = target.args(environ)
    return bool(jump_hosts(args)) or proxy_command(args) is not None


def _hop_target(hop: str, before: list[str]) -> SshTarget:
    """A ProxyJump hop ([user@]host[:port] or ssh://[user@]host[:port]) as a target of its own, reached
    through the hops before it."""
    spec = hop.removeprefix("ssh://")
    user, _, rest = spec.rpartition("@")
    if rest.startswith("["):  # [IPv6]:port
        address, _, port = rest[1:].partition("]")
        port = port.removeprefix(":")
    else:
        address, _, port = rest.partition(":") if rest.count(":") == 1 else (rest, "", "")
    via = ("-J", ",".join(before)) if before else ()
    return SshTarget(address=address, port=int(port) if port.isdigit() else None, user=user or None,
                     common_args=via, extra_args=())


def _jump_spec(address: str) -> str:
    return f"[{address}]" if ":" in address else address


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
    # Before any connection: Ansible connects with ssh, the check reads the pins with ssh-keygen.
    missing = [p for p in ("ssh", *(() if policy.mode == "off" else ("ssh-keygen",))) if shutil.which(p) is None]
    if missing:
        raise PreflightError(f"{' and '.join(missing)} not found on PATH: kfinstall and Ansible reach the hosts with "
                             "the OpenSSH client. Install it on this machine (Debian/Ubuntu: apt-get install "
                             "openssh-client) and run again; nothing was run on any host")
    policy.write_ssh_config()  # before any connection: every ssh of the run reads it (-F)
    if policy.mode == "off":
        return HostKeyReport(policy.mode, "/dev/null", ignored=ignored)
    policy.known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not policy.known_hosts.exists():
        policy.known_hosts.touch(mode=0o600)
    report = HostKeyReport(policy.mode, str(policy.known_hosts), ignored=ignored)
    refuse_config_routes(policy)
    # Jump hosts first: a hop whose key changed must be named as such, not as its hosts' failure.
    for group in (policy.jumps, policy.targets):
        refused = _check_group(policy, group, report)
        if refused:
            raise PreflightError("host key check refused (nothing was run on any host):\n  " + "\n  ".join(refused))
    return report


def _check_group(policy: HostKeyPolicy, targets: dict[str, SshTarget], report: HostKeyReport) -> list[str]:
    """Check `targets` in parallel, adding each outcome to `report`; the refusals."""
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(targets)))) as pool:
        checked = pool.map(lambda target: _check_one(policy, target), targets.values())
        outcomes = dict(zip(targets, checked, strict=True))
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
    return refused


def environment_conflicts(environ: dict[str, str]) -> list[str]:
    """The operator's own Ansible environment against kfinstall's host-key settings.

    -o options kfinstall owns in ANSIBLE_SSH_COMMON_ARGS/_EXTRA_ARGS would be silently ignored by ssh:
    refused (exit 2). ANSIBLE_SSH_ARGS and the host-key-checking switches are replaced for kfinstall's
    runs: returned, so the preflight says so instead of ignoring them silently."""
    for name in ARGS_ENV:
        try:
            options = args_options(name, shlex.split(environ.get(name, "")))
        except ValueError as exc:
            raise ConfigError(
                f"{name} in your environment cannot be split into ssh arguments ({exc}). Fix: balance its quotes"
            ) from None
        for option, value in options:
            problem = option_problem(option, value, transfer=name in ARGS_ENV[2:])
            if problem is not None:
                raise ConfigError(f"{name} in your environment: {problem[0]}. Fix: unset it, or {problem[1]}")
    replaced = (
        "ANSIBLE_SSH_ARGS", "ANSIBLE_HOST_KEY_CHECKING", "ANSIBLE_SSH_HOST_KEY_CHECKING", "ANSIBLE_SSH_CONTROL_PATH",
        "ANSIBLE_SSH_CONTROL_PATH_DIR", "ANSIBLE_TRANSPORT", *EXECUTABLES_ENV,
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


def _ssh_settings(policy: HostKeyPolicy, target: SshTarget) -> dict[str, str]:
    """What ssh makes of every setting for `target` (`ssh -G`: the command line, then the config files; no
    connection)."""
    proc = run_child(_ssh_argv(policy, target, "-G"), timeout=CHECK_TIMEOUT_S)
    return dict(line.split(" ", 1) for line in proc.stdout.splitlines() if " " in line)


def refuse_config_routes(policy: HostKeyPolicy) -> None:
    """ConfigError (exit 2, before any connection) naming each host that an ssh config file (~/.ssh/config,
    /etc/ssh/ssh_config), not the inventory, sends through an SSH jump: that hop is not one kfinstall knows to
    check first, and without jump hosts of the site's own its ssh reads the operator's host-key settings (a
    hop's ssh gets no -o options, and kfinstall passes no -F then)."""
    environ = dict(os.environ)
    found = []
    for name, target in {**policy.jumps, **policy.targets}.items():
        if _own_route(target, environ) or (policy.bastion is not None and target.address in policy.proxied):
            continue
        settings = _ssh_settings(policy, target)
        hop = settings.get("proxyjump", "none")
        if hop.lower() == "none":
            command = settings.get("proxycommand", "none")
            hop = (proxy_ssh_destination(command) if command.lower() != "none" else None) or "none"
        if hop.lower() != "none":
            found.append(f"{name}: your ssh configuration (~/.ssh/config or /etc/ssh/ssh_config) sends it through "
                         f"the jump host {hop}, whose key kfinstall cannot check against the site's known_hosts. "
                         f"Fix: write -J {hop} in its ansible_ssh_common_args (or put the jump host in a `bastion` "
                         "group): kfinstall then checks the jump host's key first, like every host's")
    if found:
        raise ConfigError("\n".join(found))


def _lookup_name(policy: HostKeyPolicy, target: SshTarget) -> str:
    """The name ssh files the host's key under: HostKeyAlias, else the HostName, with [ ]:port off port 22."""
    config = _ssh_settings(policy, target)
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
