"""Hostile input: exit 2 in seconds naming the file and key, no traceback, no hang, nothing written.

Issue #11 item 12. Each case runs kfinstall's entry point (main(), which maps errors to exit codes)
in a forked child with a timeout and a memory cap, so a hang (alias bomb, FIFO, /dev/zero) or a
runaway allocation fails the test instead of stalling or killing the suite; forking skips the second
or so a fresh interpreter spends importing. No assertion is on speed. The site folder is snapshotted
before and compared after, and the state dir must not appear.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from installer.cli import main
from installer.config import yamlfile
from installer.config.merge import MAX_KEY_SEGMENTS
from installer.config.yamlfile import CONFIG_LIMITS, INVENTORY_LIMITS

TIMEOUT = 20  # seconds; far above the few seconds any case takes, far below a hang
MEMORY_CAP = 3 << 30  # address space of the child: a runaway read or expansion dies with MemoryError
# Enough for every problem line of a case; a case echoing a whole bad value would blow past it.
MAX_OUTPUT = 4000
TRACEBACK_EXIT = 99


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def kfinstall(*args: str, cwd: Path | None = None) -> Done:
    """main() with `args` in a forked child; killed (and the test failed) after TIMEOUT seconds."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            _child(args, cwd, out.fileno(), err.fileno())
        code = _wait(pid)
        out.seek(0)
        err.seek(0)
        return Done(code, out.read().decode(errors="replace"), err.read().decode(errors="replace"))


def _child(args: tuple[str, ...], cwd: Path | None, out: int, err: int) -> None:
    code = TRACEBACK_EXIT
    try:
        os.dup2(out, 1)
        os.dup2(err, 2)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the child exits below
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
        for key in [k for k in os.environ if k.startswith(("KFINSTALL_", "ANSIBLE_"))]:
            del os.environ[key]
        if cwd is not None:
            os.chdir(cwd)
        sys.argv = ["kfinstall", *args]
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - what escapes main() is the traceback an operator would see
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _wait(pid: int) -> int:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"kfinstall did not finish within {TIMEOUT} s (a hang)")


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    """Every entry under root: mode and content hash (FIFOs and links by their kind, never opened)."""
    found: dict[str, tuple[int, str]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() and not path.is_symlink() else ""
        found[str(path.relative_to(root))] = (info.st_mode, digest)
    return found


def alias_bomb(levels: int = 9, prefix: str = "x", indent: str = "") -> str:
    """The billion-laughs document: each level an anchored list of nine aliases to the one before."""
    lines = [f'{indent}{prefix}0: &{prefix}0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels):
        refs = ",".join([f"*{prefix}{level - 1}"] * 9)
        lines.append(f"{indent}{prefix}{level}: &{prefix}{level} [{refs}]")
    return "\n".join(lines) + "\n"


def append(name: str, text: str) -> Callable[[Path], None]:
    def change(site: Path) -> None:
        with (site / name).open("a", encoding="utf-8") as handle:
            handle.write(text)
    return change


def replace_text(name: str, text: str) -> Callable[[Path], None]:
    return lambda site: (site / name).write_text(text, encoding="utf-8")


def grow(name: str, size: int) -> Callable[[Path], None]:
    """A file of `size` bytes (sparse: cheap to make; the cap must refuse it before reading)."""
    def change(site: Path) -> None:
        with (site / name).open("ab") as handle:
            handle.truncate(size)
    return change


def fifo(name: str) -> Callable[[Path], None]:
    def change(site: Path) -> None:
        (site / name).parent.mkdir(exist_ok=True)
        (site / name).unlink(missing_ok=True)
        os.mkfifo(site / name)
    return change


def link_to(name: str, target: str) -> Callable[[Path], None]:
    def change(site: Path) -> None:
        (site / name).unlink()
        (site / name).symlink_to(target)
    return change


def encode(name: str, encoding: str) -> Callable[[Path], None]:
    def change(site: Path) -> None:
        text = (site / name).read_text(encoding="utf-8")
        (site / name).write_bytes(text.encode(encoding))
    return change


def latin1(name: str) -> Callable[[Path], None]:
    def change(site: Path) -> None:
        (site / name).write_bytes((site / name).read_bytes() + "# caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    return change


def hosts_with_vars(extra: str) -> str:
    return ("all:\n  hosts:\n    cp1: {ansible_host: 192.0.2.11}\n    n1: {ansible_host: 192.0.2.21}\n"
            "  children:\n    kube_control_plane: {hosts: {cp1: }}\n    nfs_server: {hosts: {cp1: }}\n"
            "    kube_node: {hosts: {n1: }}\n  vars:\n" + extra)


def secrets_bomb(site: Path) -> None:
    """A valid secrets.yml whose ldap_bind_password holds a billion-laughs list (about 1.3 KB)."""
    keep = [line for line in (site / "secrets.yml").read_text().splitlines() if not line.startswith("ldap_bind")]
    bomb = ["ldap_bind_password:", '  - &s0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    bomb += [f"  - &s{level} [{','.join([f'*s{level - 1}'] * 9)}]" for level in range(1, 9)]
    (site / "secrets.yml").write_text("\n".join(keep + bomb) + "\n")
    (site / "secrets.yml").chmod(0o600)


DEEP_SET_KEY = "spec." + ".".join(["a"] * 500)
LONG_VALUE = "Q" * 100_000

# (id, change to the site, command, extra arguments, strings stderr must hold)
CASES: list[tuple[str, Callable[[Path], None], str, tuple[str, ...], tuple[str, ...]]] = [
    ("kfinstall-alias-bomb", append("kfinstall.yaml", alias_bomb()), "validate", (),
     ("error: kfinstall.yaml:", f"more than {CONFIG_LIMITS.max_nodes} values once aliases are expanded",
      ": x")),
    ("hosts-alias-bomb", replace_text("hosts.yml", hosts_with_vars(alias_bomb(indent="    "))), "validate", (),
     ("error: hosts.yml:", "all.vars.x", f"more than {INVENTORY_LIMITS.max_nodes} values once aliases")),
    ("group-vars-alias-bomb", replace_text("group_vars/all.yml", alias_bomb()), "validate", (),
     ("error: group_vars/all.yml:", "values once aliases are expanded")),
    ("secrets-alias-bomb", secrets_bomb, "plan", (), ("error: secrets.yml:",)),
    ("alias-cycle", append("kfinstall.yaml", "loop: &loop [*loop]\n"), "validate", (),
     ("error: kfinstall.yaml:", "loop[0]: an alias refers to a node that contains it")),
    ("deep-nesting", append("kfinstall.yaml", "deep: " + "[" * 5000 + "]" * 5000 + "\n"), "validate", (),
     ("error: kfinstall.yaml:", "deep[0][0]", f"nested more than {CONFIG_LIMITS.max_depth} levels deep")),
    ("kfinstall-40MB", grow("kfinstall.yaml", 40 << 20), "validate", (),
     ("error: kfinstall.yaml:", "kfinstall.yaml is 40.0 MiB; kfinstall reads at most 1.0 MiB")),
    ("hosts-40MB", grow("hosts.yml", 40 << 20), "plan", (),
     ("error: hosts.yml:", "hosts.yml is 40.0 MiB; kfinstall reads at most 4.0 MiB")),
    ("kfinstall-dev-zero", link_to("kfinstall.yaml", "/dev/zero"), "validate", (),
     ("error: kfinstall.yaml:", "is under /dev")),
    ("kfinstall-fifo", fifo("kfinstall.yaml"), "validate", (),
     ("error: kfinstall.yaml:", "kfinstall.yaml is a FIFO (named pipe), not a regular file")),
    ("hosts-fifo", fifo("hosts.yml"), "plan", (), ("error: hosts.yml:", "is a FIFO (named pipe)")),
    ("group-vars-fifo", fifo("group_vars/all.yml"), "validate", (), ("error: group_vars/all.yml:", "is a FIFO")),
    ("kfinstall-latin1", latin1("kfinstall.yaml"), "validate", (),
     ("error: kfinstall.yaml:", ": the file is not UTF-8 (byte 0xe9). Fix: save it as UTF-8")),
    ("kfinstall-utf16", encode("kfinstall.yaml", "utf-16"), "validate", (),
     ("error: kfinstall.yaml: the file is saved as UTF-16; kfinstall reads UTF-8 only. Fix: save it as UTF-8",)),
    ("hosts-utf16-no-bom", encode("hosts.yml", "utf-16-le"), "validate", (),
     ("error: hosts.yml:1:2: the file holds NUL bytes",)),
    ("hex-int-of-5000-digits", append("kfinstall.yaml", "  x: 0x" + "f" * 5000 + "\n"), "validate", (),
     ("error: kfinstall.yaml:", "spec.x: unknown key 'x'")),
    ("long-bad-value", append("kfinstall.yaml", f"  channel2: {LONG_VALUE}\n"), "validate", (),
     ("error: kfinstall.yaml:", "spec.channel2: unknown key")),
    ("newline-in-key", append("kfinstall.yaml", '  "bad\\nkey": 1\n'), "validate", (),
     ("spec.bad\\nkey: unknown key 'bad\\nkey'",)),
    ("set-key-500-deep", lambda site: None, "validate", ("--set", f"{DEEP_SET_KEY}=1"),
     ("error: --set: spec.a.a.a", "the key is longer than 256 characters")),
    ("set-key-too-many-segments", lambda site: None, "plan", ("--set", "spec." + ".".join(["b"] * 40) + "=1"),
     ("error: --set: spec.b.b", f"the key has more than {MAX_KEY_SEGMENTS} segments")),
    ("set-json-10000-deep", lambda site: None, "validate",
     ("--set", "spec.components.jupyterhub.values=" + "[" * 10000 + "]" * 10000),
     ("error: --set: spec.components.jupyterhub.values: the JSON value is nested too deeply",)),
    ("set-int-5000-digits", lambda site: None, "validate", ("--set", "gpu.timeSlicingReplicas=" + "9" * 5000),
     ("error: --set: spec.gpu.timeSlicingReplicas: the number has 5000 digits",)),
    ("set-unknown-nested-key", lambda site: None, "validate", ("--set", "spec.foo.bar=1"),
     ("error: --set: spec.foo: unknown key 'foo'",)),
    ("set-replaces-a-scalar", lambda site: None, "validate", ("--set", "metadata.name.x=1"),
     ("error: --set: metadata.name: Input should be a valid string",)),
    ("set-profile-as-a-map", lambda site: None, "validate", ("--set", 'spec.profile={"a": 1}'),
     ("error: --set: spec.profile: ",)),
    ("set-long-value", lambda site: None, "validate", ("--set", f"spec.auth.type={LONG_VALUE}"),
     ("error: --set: spec.auth.type: 'QQQQQQQQQQQQQQQQQQQQQQQQ...' is not allowed",)),
    ("state-dir-under-proc", lambda site: None, "status", ("--state-dir", "/proc/self/kf"),
     ("--state-dir", "/proc/self/kf is under /proc")),
    ("state-dir-below-a-file", lambda site: None, "status", ("--state-dir", "{site}/hosts.yml/state"),
     ("--state-dir", "its parent", "hosts.yml is a regular file, not a folder")),
]

COMMANDS = {"validate": ("inventory", "validate"), "plan": ("plan",), "status": ("status",)}


@pytest.mark.parametrize(("change", "command", "extra", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_is_refused_quickly_and_changes_nothing(
    make_site, change: Callable[[Path], None], command: str, extra: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    site = make_site()
    (site / "group_vars").mkdir(exist_ok=True)
    (site / "group_vars" / "all.yml").write_text("ntp_servers: [pool.ntp.org]\n")
    change(site)
    before = snapshot(site)
    args = tuple(a.replace("{site}", str(site)) for a in extra)
    done = kfinstall(*COMMANDS[command], "-i", str(site), *args, cwd=site)
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output[-MAX_OUTPUT:]
    assert done.returncode == 2, output[:MAX_OUTPUT]
    for text in expected:
        assert text in done.stderr, done.stderr[:MAX_OUTPUT]
    assert len(output) < MAX_OUTPUT, f"{len(output)} characters of output: a bad value is echoed whole"
    assert LONG_VALUE[:40] not in output
    assert snapshot(site) == before
    assert not (site / ".kfinstall").exists()


def test_set_errors_never_point_at_kfinstall_yaml(make_site) -> None:
    """Every problem a --set causes is reported against --set, even where kfinstall.yaml has the parent."""
    site = make_site()
    done = kfinstall("inventory", "validate", "-i", str(site), "--set", "spec.gpu.enabled.x=1",
                     "--set", "spec.storage.nfs.bogus.deeper=2", "--set", "spec.foo.bar=1")
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert lines and all(line.startswith("error: --set: ") for line in lines), lines


def test_utf8_byte_order_mark_is_accepted(make_site) -> None:
    site = make_site()
    (site / "kfinstall.yaml").write_bytes(codecs.BOM_UTF8 + (site / "kfinstall.yaml").read_bytes())
    done = kfinstall("inventory", "validate", "-i", str(site))
    assert done.returncode == 0, done.stderr


def test_symlinked_files_outside_kernel_filesystems_are_read(make_site, tmp_path: Path) -> None:
    """Operators keep inventories in git and link them in: a link to a regular file is fine."""
    site = make_site()
    real = tmp_path / "elsewhere.yaml"
    real.write_bytes((site / "kfinstall.yaml").read_bytes())
    link_to("kfinstall.yaml", str(real))(site)
    done = kfinstall("inventory", "validate", "-i", str(site))
    assert done.returncode == 0, done.stderr


def test_state_dir_that_does_not_exist_yet_is_fine(make_site, tmp_path: Path) -> None:
    site = make_site()
    done = kfinstall("status", "-i", str(site), "--state-dir", str(tmp_path / "new" / "state"))
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "new").exists()


def test_many_vars_files_share_one_node_budget(make_site, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files each under the per-file limit add up past the budget they share (made small here so the
    test parses little; the forked child inherits the patch)."""
    monkeypatch.setattr(yamlfile, "INVENTORY_LIMITS", dataclasses.replace(INVENTORY_LIMITS, max_nodes=1_000))
    site = make_site()
    (site / "group_vars").mkdir()
    for index in range(30):
        (site / "group_vars" / f"g{index}.yml").write_text("a: [" + "1," * 400 + "]\n")
    done = kfinstall("inventory", "validate", "-i", str(site))
    assert done.returncode == 2, done.stderr
    assert "error: group_vars/g10.yml:1:" in done.stderr, done.stderr  # files sorted: g0, g1, g10
    assert "what is left of the 1000 shared by group_vars/ and host_vars/" in done.stderr


def test_the_installed_command_refuses_a_fifo_without_blocking(make_site) -> None:
    """The same through the real console script in a fresh interpreter (what an operator runs)."""
    site = make_site()
    fifo("kfinstall.yaml")(site)
    command = [str(Path(sys.executable).parent / "kfinstall"), "inventory", "validate", "-i", str(site)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "kfinstall.yaml is a FIFO (named pipe), not a regular file" in done.stderr
