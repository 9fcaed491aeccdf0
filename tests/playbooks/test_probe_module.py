"""kfinstall.hosts.probe, the module that reads what the host roles decide on (issue 14).

The module is run the way Ansible runs it on a host (its file, with the arguments as JSON), as the
current user. It reads the host's files under its module constant ROOT ("/"); these tests run a copy
of the module whose ROOT is a fake host in a temporary directory (the only way to point it elsewhere:
no module option can), and put a fake `systemctl` first on PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "playbooks/collections/ansible_collections/kfinstall/hosts/plugins/modules/probe.py"
ROOT_LINE = 'ROOT = "/"\n'

# A dpkg status file as dpkg writes it: installed, held, removed, half-installed and unpacked packages,
# one of a foreign architecture and one of architecture all, and a description whose continuation
# lines look like fields.
DPKG_STATUS = """\
Package: dpkg
Status: install ok installed
Architecture: amd64
Version: 1.21.22

Package: containerd
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 1.6.20~ds1-1+b1
Description: daemon to control runC
 Version: 9.9.9
 Status: install ok installed

Package: kubelet
Status: hold ok installed
Architecture: amd64
Version: 1.30.2-1.1

Package: removed-pkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: broken-pkg
Status: install reinstreq half-installed
Architecture: amd64
Version: 2.0-1

Package: unpacked-pkg
Status: install ok unpacked
Architecture: amd64
Version: 3.0-1

Package: libfoo1
Status: install ok installed
Architecture: i386
Version: 4.0-2

Package: tzdata
Status: install ok installed
Architecture: all
Version: 2024a-0+deb12u1
"""

# A systemctl that answers like systemd 252: is-active prints a line for every unit; is-enabled stops at
# the first unit it has no file for (units named missing-*), with an error on stderr and no line.
FAKE_SYSTEMCTL = """\
#!/bin/sh
command=$1; shift
[ "$1" = "--" ] && shift
echo "$command $*" >> {log}
for unit; do
  case "$command:$unit" in
    is-active:containerd) echo active ;;
    is-active:*) echo inactive ;;
    is-enabled:containerd) echo enabled ;;
    is-enabled:missing-*)
      echo "Failed to get unit file state for $unit.service: No such file or directory" >&2; exit 1 ;;
    is-enabled:*) echo disabled ;;
  esac
done
"""

# A systemctl on a host whose systemd does not run: every call fails as a whole.
BROKEN_SYSTEMCTL = """\
#!/bin/sh
echo "$*" >> {log}
echo "System has not been booted with systemd as init system (PID 1). Can't operate." >&2
exit 1
"""


@pytest.fixture
def host(tmp_path: Path) -> Path:
    """An empty fake host; tests add the files they need."""
    root = tmp_path / "host"
    root.mkdir()
    return root


@pytest.fixture
def module_copy(tmp_path: Path, host: Path) -> Path:
    source = MODULE.read_text()
    assert source.count(ROOT_LINE) == 1, "probe.py must define ROOT = \"/\" once (the tests' hook)"
    copy = tmp_path / "probe.py"
    copy.write_text(source.replace(ROOT_LINE, f"ROOT = {str(host) + '/'!r}\n"))
    return copy


def run_probe(module: Path, tmp_path: Path, path_dirs: list[Path] | None = None, check: bool = False,
              **options: Any) -> dict[str, Any]:
    args = {"ANSIBLE_MODULE_ARGS": {**options, "_ansible_check_mode": check, "_ansible_tmpdir": str(tmp_path)}}
    args_file = tmp_path / f"args-{len(list(tmp_path.glob('args-*')))}.json"
    args_file.write_text(json.dumps(args))
    env = dict(os.environ)
    if path_dirs is not None:
        env["PATH"] = os.pathsep.join(str(path) for path in path_dirs)
    done = subprocess.run([sys.executable, str(module), str(args_file)], capture_output=True, text=True,
                          timeout=60, check=False, env=env)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def put(root: Path, path: str, content: str = "") -> Path:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    return target


def fake_command(tmp_path: Path, script: str) -> tuple[Path, Path]:
    """A bin directory holding `systemctl` running script, and the log of its calls."""
    bin_dir, log = tmp_path / "bin", tmp_path / "systemctl.log"
    bin_dir.mkdir()
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(script.format(log=log))
    systemctl.chmod(0o755)
    return bin_dir, log


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_installed_packages_are_read_from_dpkg_status(module_copy: Path, tmp_path: Path, host: Path) -> None:
    put(host, "var/lib/dpkg/status", DPKG_STATUS)
    result = run_probe(module_copy, tmp_path)
    assert result["packages"] == {
        "dpkg": "1.21.22",
        "containerd": "1.6.20~ds1-1+b1",   # the description's indented "Version:" is not a field
        "kubelet": "1.30.2-1.1",           # held: installed
        "libfoo1:i386": "4.0-2",           # foreign architecture: named as apt-get takes it
        "tzdata": "2024a-0+deb12u1",       # architecture all: the plain name
    }, result


def test_the_real_module_reads_this_machines_packages_like_dpkg_query(tmp_path: Path) -> None:
    """The module itself (ROOT "/"), against dpkg-query on this machine: the same names and versions."""
    if not Path("/var/lib/dpkg/status").exists():
        pytest.skip("this machine has no dpkg")
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {}}))
    done = subprocess.run([sys.executable, str(MODULE), str(args)], capture_output=True, text=True,
                          timeout=60, check=True)
    listed = subprocess.run(["dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Package} ${Version}\\n"],
                            capture_output=True, text=True, check=True).stdout
    expected = {fields[1]: fields[2] for fields in (line.split() for line in listed.splitlines())
                if len(fields) == 3 and fields[0][1] == "i"}
    result = json.loads(done.stdout)
    assert result["changed"] is False
    assert result["packages"] == expected


@pytest.mark.parametrize("key", ["net/ipv4/ip_forward", "net..ipv4.ip_forward", "../../etc/shadow",
                                 "Net.IPv4.ip_forward", ".net.ipv4", "net.ipv4.", "", "kernel.core pattern"])
def test_a_sysctl_key_outside_proc_sys_is_refused(module_copy: Path, tmp_path: Path, host: Path, key: str) -> None:
    put(host, "etc/shadow", "root:secret\n")
    result = run_probe(module_copy, tmp_path, sysctls=["net.ipv4.ip_forward", key])
    assert result.get("failed") is True, result
    assert f"sysctl key {key!r} refused" in result["msg"]
    assert "sysctls" not in result and "secret" not in json.dumps(result)


def test_sysctls_are_read_live_with_whitespace_runs_as_one_space(module_copy: Path, tmp_path: Path,
                                                                 host: Path) -> None:
    put(host, "proc/sys/net/ipv4/ip_local_port_range", "32768\t60999\n")
    put(host, "proc/sys/net/bridge/bridge-nf-call-iptables", "1\n")
    result = run_probe(module_copy, tmp_path,
                       sysctls=["net.ipv4.ip_local_port_range", "net.bridge.bridge-nf-call-iptables", "vm.absent_key"])
    assert result["sysctls"] == {"net.ipv4.ip_local_port_range": "32768 60999",
                                 "net.bridge.bridge-nf-call-iptables": "1", "vm.absent_key": ""}


def test_a_host_without_the_proc_files_has_none_of_the_features(module_copy: Path, tmp_path: Path) -> None:
    before = int(time.time())
    result = run_probe(module_copy, tmp_path, apt_index="/var/lib/apt/lists/lab_._Packages")
    features = ("container", "modules", "bridge", "overlay", "netns_sysctls", "global_sysctls", "apt_index_read")
    assert {name: result[name] for name in features} == dict.fromkeys(features, False), result
    assert result["container_tech"] == "" and result["packages"] == {}
    # No stamp and no lists directory: as old as the epoch, so the index counts as stale.
    assert before <= result["apt_index_age"] <= int(time.time())


def test_a_host_with_the_proc_files_has_the_features(module_copy: Path, tmp_path: Path, host: Path) -> None:
    put(host, "proc/modules", "overlay 151552 0 - Live 0x0\n")
    (host / "proc/sys/net/bridge").mkdir(parents=True)
    put(host, "proc/filesystems", "nodev\tsysfs\nnodev\toverlay\n\text4\n")
    put(host, "proc/sys/net/ipv4/ip_forward", "0\n")
    put(host, "proc/sys/vm/max_map_count", "65530\n")
    put(host, "var/lib/apt/lists/lab_._Packages", "")
    result = run_probe(module_copy, tmp_path, apt_index="/var/lib/apt/lists/lab_._Packages")
    features = ("modules", "bridge", "overlay", "netns_sysctls", "global_sysctls", "apt_index_read")
    assert {name: result[name] for name in features} == dict.fromkeys(features, True), result


def test_overlay_is_a_word_of_proc_filesystems_not_a_substring(module_copy: Path, tmp_path: Path,
                                                              host: Path) -> None:
    put(host, "proc/filesystems", "nodev\toverlayfs-old\nnodev\tfuse.overlay\n")
    assert run_probe(module_copy, tmp_path)["overlay"] is False


@pytest.mark.parametrize(("files", "tech"), [
    ({"run/systemd/container": "podman\n"}, "podman"),
    ({"run/systemd/container": "systemd-nspawn\n", "run/.containerenv": ""}, "systemd-nspawn"),
    ({"run/.containerenv": ""}, "podman"),
    ({".dockerenv": ""}, "docker"),
    ({"proc/1/environ": "PATH=/usr/bin\0container=lxc\0TERM=linux\0"}, "lxc"),
    ({"proc/vz/veinfo": ""}, "openvz"),
    ({"proc/vz/veinfo": "", "proc/bc/0": ""}, ""),  # the OpenVZ host itself
    ({"proc/1/environ": "PATH=/usr/bin\0TERM=linux\0"}, ""),
])
def test_the_container_host_test(module_copy: Path, tmp_path: Path, host: Path, files: dict[str, str],
                                 tech: str) -> None:
    for path, content in files.items():
        put(host, path, content)
    result = run_probe(module_copy, tmp_path)
    assert (result["container"], result["container_tech"]) == (bool(tech), tech)


def test_apt_index_age_reads_the_success_stamp_else_the_lists_directory(module_copy: Path, tmp_path: Path,
                                                                        host: Path) -> None:
    lists = host / "var/lib/apt/lists"
    lists.mkdir(parents=True)
    now = time.time()
    os.utime(lists, (now - 500, now - 500))
    assert 500 <= run_probe(module_copy, tmp_path)["apt_index_age"] < 560
    stamp = put(host, "var/lib/apt/periodic/update-success-stamp")
    os.utime(stamp, (now - 100, now - 100))
    assert 100 <= run_probe(module_copy, tmp_path)["apt_index_age"] < 160


def test_apt_index_must_be_an_absolute_path(module_copy: Path, tmp_path: Path) -> None:
    result = run_probe(module_copy, tmp_path, apt_index="lists/lab_Packages")
    assert result.get("failed") is True and "absolute path" in result["msg"], result


def test_units_take_one_is_active_and_one_is_enabled_call(module_copy: Path, tmp_path: Path) -> None:
    bin_dir, log = fake_command(tmp_path, FAKE_SYSTEMCTL)
    result = run_probe(module_copy, tmp_path, path_dirs=[bin_dir], units=["containerd", "chrony"])
    assert result["units"] == {"containerd": {"active": "active", "enabled": "enabled"},
                               "chrony": {"active": "inactive", "enabled": "disabled"}}, result
    assert calls(log) == ["is-active containerd chrony", "is-enabled containerd chrony"]


def test_is_enabled_stopping_at_a_missing_unit_is_resumed_after_it(module_copy: Path, tmp_path: Path) -> None:
    bin_dir, log = fake_command(tmp_path, FAKE_SYSTEMCTL)
    result = run_probe(module_copy, tmp_path, path_dirs=[bin_dir], units=["containerd", "missing-nfs", "chrony"])
    assert result["units"] == {"containerd": {"active": "active", "enabled": "enabled"},
                               "missing-nfs": {"active": "inactive", "enabled": ""},
                               "chrony": {"active": "inactive", "enabled": "disabled"}}, result
    assert calls(log) == ["is-active containerd missing-nfs chrony", "is-enabled containerd missing-nfs chrony",
                          "is-enabled chrony"]


def test_a_failing_systemctl_gives_empty_states_in_one_call_each(module_copy: Path, tmp_path: Path) -> None:
    bin_dir, log = fake_command(tmp_path, BROKEN_SYSTEMCTL)
    result = run_probe(module_copy, tmp_path, path_dirs=[bin_dir], units=["containerd", "chrony", "ssh"])
    assert result["units"] == dict.fromkeys(["containerd", "chrony", "ssh"], {"active": "", "enabled": ""}), result
    assert len(calls(log)) == 2


def test_without_systemctl_units_are_empty(module_copy: Path, tmp_path: Path) -> None:
    if any(Path(directory, "systemctl").exists() for directory in ("/sbin", "/usr/sbin", "/usr/local/sbin")):
        pytest.skip("Ansible also looks for commands in the sbin directories, and this machine has systemctl there")
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    result = run_probe(module_copy, tmp_path, path_dirs=[empty], units=["containerd"])
    assert result["units"] == {"containerd": {"active": "", "enabled": ""}}, result


@pytest.mark.parametrize("unit", ["-H", "--host=10.0.0.1", "a b", "unit;reboot", ""])
def test_a_unit_name_that_is_not_one_is_refused(module_copy: Path, tmp_path: Path, unit: str) -> None:
    bin_dir, log = fake_command(tmp_path, FAKE_SYSTEMCTL)
    result = run_probe(module_copy, tmp_path, path_dirs=[bin_dir], units=["containerd", unit])
    assert result.get("failed") is True and f"unit name {unit!r} refused" in result["msg"], result
    assert calls(log) == []


def test_check_mode_probes_too_and_nothing_is_changed(module_copy: Path, tmp_path: Path, host: Path) -> None:
    put(host, "var/lib/dpkg/status", DPKG_STATUS)
    put(host, "proc/sys/net/ipv4/ip_forward", "1\n")
    before = sorted(str(path) for path in host.rglob("*"))
    result = run_probe(module_copy, tmp_path, check=True, sysctls=["net.ipv4.ip_forward"])
    assert result.get("skipped") is not True and result["changed"] is False, result
    assert result["sysctls"] == {"net.ipv4.ip_forward": "1"} and "kubelet" in result["packages"]
    assert sorted(str(path) for path in host.rglob("*")) == before


def test_swap_is_active_when_proc_swaps_lists_a_device(module_copy: Path, tmp_path: Path, host: Path) -> None:
    header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"
    assert run_probe(module_copy, tmp_path)["swap"] is False  # no /proc/swaps: no swap
    put(host, "proc/swaps", header)
    assert run_probe(module_copy, tmp_path)["swap"] is False
    put(host, "proc/swaps", header + "/dev/sda2  partition\t2097148\t0\t-2\n")
    assert run_probe(module_copy, tmp_path)["swap"] is True


# mountinfo: "ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER-OPTIONS" (proc(5));
# a space in a mount point is written \040.
MOUNTINFO = (
    "21 1 0:20 / / rw,relatime - overlay overlay rw,lowerdir=/l\n"
    "22 21 8:1 / /srv rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "23 22 8:2 / /srv/data\\040disk rw - xfs /dev/sda2 rw\n"
    "24 21 0:30 / /srvx rw - tmpfs tmpfs rw\n"
)


@pytest.mark.parametrize(("path", "fstype"), [
    ("/export/kfinstall", "overlay"),        # neither exists: / holds it
    ("/srv/nfs/export", "ext4"),             # /srv exists: the mount at /srv
    ("/srv/data disk/x", "xfs"),             # the escaped mount point, the longest that holds it
    ("/srvx/nfs", "tmpfs"),                  # a prefix of the name is not a parent
    ("/srv/../srvx/a", "tmpfs"),             # normalised first
])
def test_paths_get_the_type_of_the_mount_holding_their_nearest_existing_parent(
        module_copy: Path, tmp_path: Path, host: Path, path: str, fstype: str) -> None:
    put(host, "proc/self/mountinfo", MOUNTINFO)
    for directory in ("srv/data disk", "srvx"):
        (host / directory).mkdir(parents=True)
    assert run_probe(module_copy, tmp_path, paths=[path])["filesystems"] == {path: fstype}


def test_a_symbolic_link_is_followed_to_the_mount_it_points_into(module_copy: Path, tmp_path: Path,
                                                                 host: Path) -> None:
    put(host, "proc/self/mountinfo", MOUNTINFO)
    (host / "srv/data disk").mkdir(parents=True)
    (host / "export").symlink_to("srv/data disk")
    assert run_probe(module_copy, tmp_path, paths=["/export/nfs"])["filesystems"] == {"/export/nfs": "xfs"}


@pytest.mark.parametrize("path", ["export/nfs", "", "/srv/\0x"])
def test_a_path_that_is_not_absolute_is_refused(module_copy: Path, tmp_path: Path, path: str) -> None:
    result = run_probe(module_copy, tmp_path, paths=[path])
    assert result.get("failed") is True and "absolute path" in result["msg"], result


def test_the_real_module_names_filesystems_as_the_kernel_does(tmp_path: Path) -> None:
    """The module itself (ROOT "/") on this machine: the type it names for a path is the type of the
    mount that findmnt (util-linux) names for it."""
    paths = [str(tmp_path / "not" / "yet"), "/proc/sys", "/"]
    result = run_probe(MODULE, tmp_path, paths=paths)
    for path in paths:
        existing = path
        while not os.path.exists(existing):
            existing = os.path.dirname(existing)
        done = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "--target", existing], capture_output=True,
                              text=True, timeout=30, check=False)
        if done.returncode != 0:
            pytest.skip(f"findmnt --target {existing} failed: {done.stderr.strip()}")
        assert result["filesystems"][path] == done.stdout.strip(), (path, result["filesystems"])
