"""Each host's SSH connection as Ansible will make it, and the inventory settings that would bypass
kfinstall's host-key policy (spec.ssh.hostKeyChecking).

Read with Ansible's own variable manager, so group_vars/ and host_vars/ count exactly as they do for
Ansible. Values are read, never templated: a connection setting holding a Jinja template is refused,
because the host-key check runs before Ansible and must reach the host Ansible will reach.

Precedence (ansible-core's ssh connection plugin, measured on 2.19): the ssh command line is
`ssh <ssh_args> [-o StrictHostKeyChecking=no when host_key_checking is false] -o Port -o User ...
<ansible_ssh_common_args> <ansible_ssh_extra_args> host`, and ssh keeps the FIRST value it is given
for an option. kfinstall's options go in ssh_args (installer/adapters/ssh.py), so:
  * the same option in ansible_ssh_common_args/_extra_args would be silently ignored;
  * ansible_ssh_args in the inventory would silently replace all of kfinstall's options;
  * ansible_host_key_checking: false would add StrictHostKeyChecking=no, silently ignored.
Neither side may win silently, so each of these is refused (exit 2) with the way to say it in
kfinstall.yaml instead. ssh_config files (~/.ssh/config) are read after the command line: their
host-key settings never apply to the connection to a host itself. A jump that only such a file adds is
refused before any connection (installer/adapters/ssh.py refuse_config_routes): its hop's ssh gets no -o
options, so it would read the operator's host-key settings. An inventory's -F is refused: it would replace
kfinstall's own config file, the only settings a hop's ssh reads.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from installer.config.addresses import is_dns_label
from installer.config.problems import Problems
from installer.config.yamlfile import load_yaml
from installer.paths import default_state_dir

# Options kfinstall sets itself on every ssh command line (installer/adapters/ssh.py SSH_ARGS_OWNED).
# ControlPath too: a master socket shared with another site, policy or the operator's own ssh is
# reused without any host-key check (installer/adapters/ssh.py keeps one directory per site and policy).
OWNED_OPTIONS = (
    "StrictHostKeyChecking", "UserKnownHostsFile", "GlobalKnownHostsFile", "ControlMaster", "ControlPersist",
    "ControlPath",
)
# Options that make ssh trust a host key found elsewhere than the site's known_hosts (a command's
# output, DNS SSHFP records): the pinned key would no longer be the only one accepted.
TRUST_OPTIONS = ("KnownHostsCommand", "VerifyHostKeyDNS")
# Options that run a command on this machine after each connection (ssh_config(5) LocalCommand): no use to
# Ansible, and an inventory is not where kfinstall takes code to run from.
COMMAND_OPTIONS = ("LocalCommand", "PermitLocalCommand")
# -F: ssh reads only the LAST config file it is given, and a ProxyJump hop's ssh reads nothing else (no -o),
# so an inventory's -F would replace kfinstall's <state>/ssh_config and with it the jump hosts' key checks
# (Kubespray's ssh-bastion.conf says StrictHostKeyChecking no for the hop). Named like an option here.
CONFIG_FILE = "ConfigFile"
# ssh flags that set an option directly: -S wins over any -o ControlPath, wherever it stands; -J is ProxyJump.
_FLAG_OPTIONS = {"S": "ControlPath", "M": "ControlMaster", "J": "ProxyJump", "F": CONFIG_FILE}
# Ansible's own variables for the control socket: a host variable beats kfinstall's environment.
_CONTROL_PATH_VARS = ("ansible_control_path", "ansible_control_path_dir")
SSH_CONNECTIONS = ("ssh", "smart", "ansible.builtin.ssh", "ansible.legacy.ssh")
LOCAL_CONNECTIONS = ("local", "ansible.builtin.local", "ansible.legacy.local")
# ssh's getopt string (OpenSSH ssh.c): a letter followed by ':' takes an argument.
_SSH_OPTSTRING = "1246ab:c:e:fgi:kl:m:no:p:qstvxAB:CD:E:F:GI:J:KL:MNO:P:Q:R:S:TVw:W:XYy"
_TAKES_ARGUMENT = {c for i, c in enumerate(_SSH_OPTSTRING) if _SSH_OPTSTRING[i + 1 : i + 2] == ":"}
# Ansible's names for each setting, in its order of precedence (a later name wins).
_ADDRESS_VARS = ("ansible_host", "ansible_ssh_host")
_PORT_VARS = ("ansible_port", "ansible_ssh_port")
_USER_VARS = ("ansible_user", "ansible_ssh_user")
_ARGS_VARS = ("ansible_ssh_common_args", "ansible_ssh_extra_args")
# Ansible adds these to the sftp / scp command line of every file it copies (after kfinstall's ssh args).
_TRANSFER_VARS = ("ansible_sftp_extra_args", "ansible_scp_extra_args")
# Programs Ansible would run instead of ssh, sftp and scp: the host-key check runs ssh itself, so another
# program would connect in a way kfinstall never checked.
EXECUTABLE_VARS = {"ansible_ssh_executable": "ssh", "ansible_sftp_executable": "sftp",
                   "ansible_scp_executable": "scp"}
_CHECKING_VARS = ("ansible_host_key_checking", "ansible_ssh_host_key_checking")
_KEY_VARS = ("ansible_private_key_file", "ansible_ssh_private_key_file")  # read for a bastion (Kubespray's)
# Every variable read_target needs (installer/config/inventory.py reads them through Ansible).
SSH_TARGET_VARS = (
    *_ADDRESS_VARS, *_PORT_VARS, *_USER_VARS, *_ARGS_VARS, *_CHECKING_VARS, "ansible_ssh_args", "ansible_connection",
    *_CONTROL_PATH_VARS, *_KEY_VARS, *_TRANSFER_VARS, *EXECUTABLE_VARS,
)
# The inventory checks (installer/config/inventory.py) refuse templates in the address, port and user
# variables, old names included; these are the rest.
_LITERAL_VARS = (*_ARGS_VARS, *_TRANSFER_VARS)


@dataclass(frozen=True)
class SshTarget:
    """Where and how Ansible's ssh reaches one host, with the operator's own ssh arguments: the
    inventory's ansible_ssh_common_args and _extra_args, None where the inventory sets none (Ansible
    then takes ANSIBLE_SSH_COMMON_ARGS / ANSIBLE_SSH_EXTRA_ARGS from the environment)."""

    address: str
    port: int | None = None
    user: str | None = None
    common_args: tuple[str, ...] | None = None
    extra_args: tuple[str, ...] | None = None
    local: bool = False  # ansible_connection: local (no SSH, no host key)
    identity: str | None = None  # ansible_ssh_private_key_file, as written (used for a bastion: see adapters/ssh.py)

    def args(self, environ: dict[str, str]) -> list[str]:
        """The operator's ssh arguments as Ansible passes them: each from the inventory, else the environment."""
        found: list[str] = []
        for own, name in ((self.common_args, "ANSIBLE_SSH_COMMON_ARGS"), (self.extra_args, "ANSIBLE_SSH_EXTRA_ARGS")):
            found += own if own is not None else shlex.split(environ.get(name, ""))
        return found


def ssh_option_names(args: list[str] | tuple[str, ...]) -> list[str]:
    """The option names an ssh argument list sets, as ssh's getopt reads them (-oX=1, -o X=1, -vo X 1,
    -o "X<tab>1"), with -S, -M and -J named as the options they set (ControlPath, ControlMaster, ProxyJump)."""
    return [name for name, _ in ssh_options(args)]


def ssh_options(args: list[str] | tuple[str, ...], takes: set[str] | None = None,
                flags: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(option name, value) of each option an ssh argument list sets, in order (see ssh_option_names).
    `takes` / `flags`: another program's getopt letters and named flags (sftp and scp: see _TRANSFER_FLAGS)."""
    takes = _TAKES_ARGUMENT if takes is None else takes
    flags = _FLAG_OPTIONS if flags is None else flags
    found, i = [], 0
    while i < len(args):
        token = args[i]
        i += 1
        if not token.startswith("-") or token in ("-", "--"):
            continue
        for pos, letter in enumerate(token[1:], start=1):
            value = ""
            if letter in takes:
                value = token[pos + 1 :]
                if not value and i < len(args):
                    value, i = args[i], i + 1
            if letter in flags:
                found.append((flags[letter], value))
            if letter not in takes:
                continue
            if letter == "o":
                # ssh_config syntax: the keyword ends at '=' or any white space, leading space skipped.
                name, rest = _keyword(value)
                found.append((name, rest))
            break
    return found


def _keyword(value: str) -> tuple[str, str]:
    """An -o argument split as ssh_config reads it: the keyword, then the value (after '=' or white space)."""
    parts = re.split(r"[\s=]", value.strip(), maxsplit=1)
    rest = parts[1] if len(parts) > 1 else ""
    return parts[0], rest.strip().removeprefix("=").strip()


def jump_hosts(args: list[str] | tuple[str, ...]) -> list[str]:
    """The ProxyJump hops an ssh argument list asks for (-J a,b or -o ProxyJump=a,b; ssh keeps the first
    given), [] without one or with `none`."""
    value = next((v for name, v in ssh_options(args) if name.lower() == "proxyjump"), "")
    return [] if value.strip().lower() in ("", "none") else [hop.strip() for hop in value.split(",") if hop.strip()]


def proxy_command(args: list[str] | tuple[str, ...]) -> str | None:
    """The ProxyCommand an ssh argument list sets (the first), None without one or with `none`."""
    value = next((v for name, v in ssh_options(args) if name.lower() == "proxycommand"), None)
    return None if value is None or value.strip().lower() == "none" else value


def _last(variables: dict[str, Any], names: tuple[str, ...]) -> Any:
    found = [variables[n] for n in names if variables.get(n) not in (None, "")]
    return found[-1] if found else None


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


Locate = Callable[[Any], tuple[str, "int | None", "int | None"]]  # a value -> (file, line, column) it came from


def read_target(name: str, variables: dict[str, Any], display: str, problems: Problems,
                locate: Locate | None = None) -> SshTarget | None:
    """The host's SSH target, or None after adding a problem for each setting kfinstall must refuse.

    `locate` names the file and line a value came from (installer/config/inventory.py _Where.value): a
    value from group_vars/ is then one problem at its own line, not one per host at the inventory's."""
    key = f"all.hosts.{name}"
    before = len(problems.errors)

    def refuse(var: str, message: str, fix: str) -> None:
        file, line, column = locate(variables.get(var)) if locate is not None else (display, None, None)
        problems.error(file, f"{key}.{var}" if file == display else var, message, fix, line=line, column=column)

    connection = str(variables.get("ansible_connection") or "ssh")
    if connection not in SSH_CONNECTIONS + LOCAL_CONNECTIONS:
        refuse("ansible_connection", f"connection {connection!r}: kfinstall checks host keys on ssh connections only",
               "use the ssh connection (remove ansible_connection) or local for this machine itself")
    for var in _LITERAL_VARS:
        if _templated(variables.get(var)):
            refuse(var, "holds a Jinja template; kfinstall checks host keys before Ansible runs and does not "
                   "evaluate templates in connection settings", "write the value itself")
    if variables.get("ansible_ssh_args") not in (None, ""):
        refuse("ansible_ssh_args", "would replace kfinstall's own ssh options (host-key checking, known_hosts, "
               "connection reuse)", "move your options to ansible_ssh_common_args")
    for var in _CONTROL_PATH_VARS:
        if variables.get(var) not in (None, ""):
            refuse(var, "would replace kfinstall's control socket directory, kept per site and host-key policy "
                   "(a master connection shared with other ssh sessions is reused without any host-key check)",
                   "remove it")
    for var, program in EXECUTABLE_VARS.items():
        if variables.get(var) not in (None, "", program):
            refuse(var, f"would make Ansible run another program instead of {program}: kfinstall checks host keys "
                   f"with {program}'s own options, which another program need not honour",
                   f"remove it (kfinstall runs {program} from PATH)")
    for var in _CHECKING_VARS:
        if variables.get(var) is not None and str(variables[var]).strip().lower() not in ("true", "yes", "1", "on"):
            refuse(var, "host-key checking is set by kfinstall.yaml, not by the inventory",
                   "remove it; to stop checking (not advised) set spec.ssh.hostKeyChecking: off")
    split = _split_args(variables, refuse)
    _check_options(split, refuse)
    if len(problems.errors) > before:
        return None
    port = _last(variables, _PORT_VARS)
    identity = _last(variables, _KEY_VARS)
    return SshTarget(
        address=str(_last(variables, _ADDRESS_VARS) or name),
        port=int(port) if port is not None and str(port).isdigit() else None,
        user=None if _last(variables, _USER_VARS) is None else str(_last(variables, _USER_VARS)),
        common_args=tuple(split["ansible_ssh_common_args"]) if "ansible_ssh_common_args" in split else None,
        extra_args=tuple(split["ansible_ssh_extra_args"]) if "ansible_ssh_extra_args" in split else None,
        local=connection in LOCAL_CONNECTIONS,
        identity=None if identity is None else str(identity),
    )


Refuse = Callable[[str, str, str], None]  # (variable, message, fix)
# sftp and scp (OpenSSH sftp.c / scp.c getopt): the letters taking an argument, and the flags an inventory's
# transfer args may not hold: -S and -D run another program for the connection, sftp's -b runs a batch of
# commands (`!` ones in a local shell), -F and -J as for ssh (every transfer uses the ssh args' jump anyway).
_TRANSFER_TAKES = set("BbcDFiJloPRSsX")
_TRANSFER_FLAGS = {"S": "-S", "D": "-D", "b": "-b", "F": CONFIG_FILE, "J": "ProxyJump"}


_OWNED_FIX = ("remove it: StrictHostKeyChecking and the known_hosts files come from spec.ssh.hostKeyChecking and "
              "the state directory's known_hosts, ControlMaster/ControlPersist/ControlPath (-M, -S) reuse each "
              "connection through a socket of the site's own")
# Lower-case option name -> (message, fix): what an inventory or the environment may not set.
_REFUSED_OPTIONS: dict[str, tuple[str, str]] = {
    CONFIG_FILE.lower(): (
        "-F would replace kfinstall's ssh config file: ssh reads only the last -F, and a ProxyJump hop reads nothing "
        "else, so the jump hosts' keys would be checked as that file says (Kubespray's ssh-bastion.conf: not at all)",
        "remove it: reach a jump host with a `bastion` group or -J/-o ProxyJump in ansible_ssh_common_args, and keep "
        "other ssh settings in ~/.ssh/config, which kfinstall's own ssh config includes"),
    **{o.lower(): ("-o LocalCommand / PermitLocalCommand would run a command on this machine after every "
                   "connection Ansible makes", "remove it") for o in COMMAND_OPTIONS},
    **{o.lower(): (f"-o {o} would trust host keys from outside the site's known_hosts",
                   "remove it: host keys are pinned in the state directory's known_hosts (spec.ssh.hostKeyChecking "
                   "says how)") for o in TRUST_OPTIONS},
    **{o.lower(): (f"-o {o} is set by kfinstall on every connection, so yours would be ignored", _OWNED_FIX)
       for o in OWNED_OPTIONS},
}


def option_problem(option: str, value: str, transfer: bool = False) -> tuple[str, str] | None:
    """(message, fix) when an inventory or environment ssh option (or flag, see ssh_options) bypasses
    kfinstall's host-key policy or runs a command on this machine; None for an option that is the operator's."""
    lower = option.lower()
    if option.startswith("-"):
        return (f"{option} makes sftp/scp run another program (or a batch of commands) for the connection",
                "remove it: Ansible copies files with sftp and scp over the same checked ssh connection")
    if transfer and lower == "proxyjump":
        return ("a jump host in the transfer args is one kfinstall does not check first",
                "write it in ansible_ssh_common_args (every connection, file copies too, uses it)")
    hop = proxy_ssh_destination(value) if lower == "proxycommand" else None
    if hop is not None:
        return ("-o ProxyCommand runs ssh to a jump host whose key kfinstall cannot check (that ssh reads your "
                "own known_hosts, not the site's)",
                f"write -o ProxyJump={hop} instead (or put the jump host in a `bastion` group, as Kubespray "
                "does): kfinstall then checks its key against the site's known_hosts like every host's")
    return _REFUSED_OPTIONS.get(lower)


def args_options(var: str, args: list[str] | tuple[str, ...]) -> list[tuple[str, str]]:
    """The options one ssh-args variable (or its ANSIBLE_* environment twin) sets, parsed as its program does."""
    if var.endswith(("sftp_extra_args", "scp_extra_args", "SFTP_EXTRA_ARGS", "SCP_EXTRA_ARGS")):
        return ssh_options(args, _TRANSFER_TAKES, _TRANSFER_FLAGS)
    return ssh_options(args)


def _check_options(split: dict[str, list[str]], refuse: Refuse) -> None:
    """Refuse what each ssh-args variable may not set (option_problem), once per variable and option."""
    for var, var_args in split.items():
        transfer = var in _TRANSFER_VARS
        seen = set()
        for option, value in args_options(var, var_args):
            if option.lower() == "proxycommand" and option.lower() in seen:
                continue  # ssh uses the first ProxyCommand only
            seen.add(option.lower())
            problem = option_problem(option, value, transfer)
            if problem is not None:
                refuse(var, *problem)


# Programs that run the command after them: `exec ssh`, `/usr/bin/env ssh`, `sshpass -p x ssh`.
_WRAPPERS = {"exec", "env", "command", "nohup", "sshpass", "timeout", "stdbuf", "setsid", "nice", "ionice"}


def proxy_ssh_destination(command: str, depth: int = 0) -> str | None:
    """`[user@]host[:port]` of a ProxyCommand that runs ssh (e.g. DeepOps' `ssh -W %h:%p -q ubuntu@10.0.0.1`),
    also behind a wrapper or a shell (`exec ssh ...`, `/usr/bin/env ssh ...`, `sh -c 'ssh ...'`), "?" when
    the destination cannot be read; None for a command that runs no ssh (nc, a SOCKS or HTTP proxy)."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return "?" if re.search(r"(^|[\s/'\"`;|&(])ssh(\s|$)", command) else None
    wrapped = bool(argv) and Path(argv[0]).name in _WRAPPERS
    for index, word in enumerate(argv):
        # ssh in command position only: `cloudflared access ssh --hostname %h` runs no ssh.
        if Path(word).name == "ssh" and (index == 0 or wrapped):
            return _ssh_destination(argv[index + 1 :])
        if depth < 3 and any(c.isspace() for c in word):  # a shell's -c string, or a quoted command
            inner = proxy_ssh_destination(word, depth + 1)
            if inner is not None:
                return inner
    return None


def _ssh_destination(argv: list[str]) -> str:
    port, destination, i = "", "?", 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("-"):
            destination = token
            break
        letter = token[1:2]
        if letter in _TAKES_ARGUMENT:
            value = token[2:] or (argv[i] if i < len(argv) else "")
            i += 0 if token[2:] else 1
            port = value if letter == "p" else port
    return f"{destination}:{port}" if port else destination


def _split_args(variables: dict[str, Any], refuse: Refuse) -> dict[str, list[str]]:
    """Each ssh-args variable (ssh, then sftp and scp), split the way Ansible splits them (shlex)."""
    split: dict[str, list[str]] = {}
    for var in (*_ARGS_VARS, *_TRANSFER_VARS):
        value = variables.get(var)
        if value in (None, ""):
            continue
        try:
            split[var] = shlex.split(str(value))
        except ValueError as exc:
            refuse(var, f"cannot be split into ssh arguments ({exc})", "balance the quotes")
    return split


KNOWN_HOSTS = "known_hosts"  # in the state directory: the keys this site's hosts are pinned to


def site_known_hosts(site: Path) -> Path | None:
    """<site>/.kfinstall/<metadata.name>/known_hosts: where `up` without --state-dir checks host keys.

    None when kfinstall.yaml does not name the cluster (load() reports that with the fix)."""
    doc = load_yaml(site / "kfinstall.yaml", "kfinstall.yaml", Problems())
    metadata = doc.data.get("metadata") if doc is not None and isinstance(doc.data, dict) else None
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or not is_dns_label(name):
        return None
    return default_state_dir(site, name) / KNOWN_HOSTS
