"""site.yml converges on 3 lab hosts (podman), and the hosts then do what the roles promise.

Lab profile settings: containerd from the distribution, nfs-ganesha on h1, a GlusterFS replica 3
volume on h1-h3 mounted on every node, no GPU. Kubernetes packages are unobtainable here, so the
kubernetes role runs up to its preflight and reports precisely why it stops. Timings are printed
(`pytest -s` or `-rA`).
"""

from __future__ import annotations

import shlex
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse

import pytest
from test_roles_common import PlaybookRun, assert_converged, lab_extra_vars, run_playbooks

pytestmark = pytest.mark.lab

HOSTS = ["h1", "h2", "h3"]
GLUSTER_MOUNT = "/mnt/gluster/kfinstall"
EXPORT = "/srv/nfs/kfinstall"


def test_too_old_containerd_stops_before_anything_is_installed(lab_site, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    """The channel's minimum containerd is checked against apt's candidate before the one apt transaction."""
    for host in HOSTS:  # as fresh as the lab made them, whatever ran before in this session
        _sh(lab_site, host, "apt-get -q -y purge containerd runc socat >/dev/null 2>&1 || true")
    transactions = {host: _apt_transactions(lab_site, host) for host in HOSTS}
    extra = lab_extra_vars(lab_site.out_dir, lab_site.repo_url, tmp_path_factory.mktemp("state"))
    run = run_playbooks(lab_site.inventory, ["site.yml"], {**extra, "kf_containerd_minimum_distro": "99.0"})
    assert run.rc != 0, run.tail()
    assert {h: r["failed"] for h, r in run.recap.items()} == dict.fromkeys(HOSTS, 1), run.tail()
    assert "older than the minimum 99.0" in run.output
    assert "Use kf_containerd_source=upstream" in run.output
    for host in HOSTS:
        assert _apt_transactions(lab_site, host) == transactions[host], f"{host}: apt ran before the check failed"
        installed = lab_site.ssh(host, "dpkg-query -W -f='${db:Status-Abbrev}' containerd socat 2>/dev/null").stdout
        assert "ii" not in installed, f"{host}: the run installed packages before failing: {installed!r}"
        # Nor wrote containerd's configuration (purge removed the old one).
        assert lab_site.ssh(host, "test -e /etc/containerd/config.toml").returncode != 0, host


# Every apt index refresh on a lab host appends one line to APT_UPDATES: apt runs the hook after each
# update, whether it downloaded anything or only got "Hit" (the lists' mtime cannot see the latter).
# python-apt's Cache.update(), which the apt module's update_cache calls, runs it too (apt-pkg's
# ListUpdate -> AcquireUpdate with its update scripts); test_the_refresh_counter_sees_ansible_refreshes
# proves that on the lab. A test artefact: written by the `converged` fixture, removed at its teardown.
APT_UPDATES = "/var/log/kfinstall-test-apt-updates"
APT_UPDATES_HOOK = "/etc/apt/apt.conf.d/99kfinstall-test-updates"
APT_UPDATES_HOOK_TEXT = f'APT::Update::Post-Invoke {{"date +%s >> {APT_UPDATES}";}};\n'
# The services each lab host runs, whose starts the runs are judged by.
UNITS = {"h1": ("containerd", "glusterd", "nfs-ganesha"), "h2": ("containerd", "glusterd"),
         "h3": ("containerd", "glusterd")}
CONFIGS = {"containerd": "/etc/containerd/config.toml", "nfs-ganesha": "/etc/ganesha/ganesha.conf"}
# What the roles install through the one transaction (nfs-ganesha on the nfs_server host only).
PACKAGES = {h: ["containerd", "runc", "nfs-common", "glusterfs-server", "glusterfs-client"] for h in HOSTS}
PACKAGES["h1"] += ["nfs-ganesha", "nfs-ganesha-vfs"]


@dataclass(frozen=True)
class Mark:
    """A host just before a run: its apt transactions and index refreshes so far, and its clock."""

    transactions: int
    updates: int
    time: str  # epoch seconds with nanoseconds, as journalctl --since @... reads them


@dataclass(frozen=True)
class RunCounts:
    """What one run did to a host, counted right after it (so later tests cannot change the numbers)."""

    transactions: int  # apt transactions (apt's history)
    updates: int  # apt index refreshes (the Post-Invoke hook's lines)
    starts: dict[str, int]  # unit -> starts and restarts (systemd's journal)
    not_installed: list[str]  # the host's PACKAGES that were not installed after the run


@dataclass
class Converged:
    site: object  # LabSite
    extra: dict
    first: PlaybookRun
    second: PlaybookRun
    first_counts: dict[str, RunCounts]
    second_counts: dict[str, RunCounts]
    # (host, unit) -> (when systemd last reported it started, when its configuration was last written),
    # read right after the first run.
    first_start_and_write: dict[tuple[str, str], tuple[Decimal, Decimal]]


def _mark(site, host: str) -> Mark:  # type: ignore[no-untyped-def]
    return Mark(_apt_transactions(site, host), _apt_updates(site, host), _sh(site, host, "date +%s.%N").strip())


def _counts_since(site, host: str, mark: Mark) -> RunCounts:  # type: ignore[no-untyped-def]
    return RunCounts(
        transactions=_apt_transactions(site, host) - mark.transactions,
        updates=_apt_updates(site, host) - mark.updates,
        starts={unit: _starts(site, host, unit, mark.time) for unit in UNITS[host]},
        not_installed=_not_installed(site, host, PACKAGES[host]),
    )


@pytest.fixture(scope="module")
def converged(lab_site, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Converged]:
    state = tmp_path_factory.mktemp("state")
    extra = lab_extra_vars(lab_site.out_dir, lab_site.repo_url, state)
    hook = f"printf %s {shlex.quote(APT_UPDATES_HOOK_TEXT)} > {APT_UPDATES_HOOK} && touch {APT_UPDATES}"
    # The services fresh from the transaction on every host, whatever ran before in this session or lab.
    fresh = {"h1": "containerd runc nfs-ganesha nfs-ganesha-vfs", "h2": "containerd runc", "h3": "containerd runc"}
    for host in HOSTS:
        _sh(lab_site, host, f"apt-get -q -y purge {fresh[host]} >/dev/null 2>&1 || true; {hook}")
    try:
        before = {h: _mark(lab_site, h) for h in HOSTS}
        first = run_playbooks(lab_site.inventory, ["site.yml"], extra)
        print(f"\nsite.yml first run on 3 hosts: {first.seconds:.1f} s, recap {first.recap}\n{first.slowest()}")
        assert_converged(first, HOSTS)
        first_counts = {h: _counts_since(lab_site, h, before[h]) for h in HOSTS}
        first_start_and_write = {
            (h, unit): _start_and_write(lab_site, h, unit, CONFIGS[unit])
            for h in HOSTS for unit in UNITS[h] if unit in CONFIGS
        }
        print(f"first run: {first_counts}")
        before = {h: _mark(lab_site, h) for h in HOSTS}
        second = run_playbooks(lab_site.inventory, ["site.yml"], extra)
        print(f"site.yml second run on 3 hosts: {second.seconds:.1f} s, recap {second.recap}\n{second.slowest()}")
        second_counts = {h: _counts_since(lab_site, h, before[h]) for h in HOSTS}
        print(f"second run: {second_counts}")
        yield Converged(lab_site, extra, first, second, first_counts, second_counts, first_start_and_write)
    finally:
        for host in HOSTS:
            lab_site.ssh(host, f"rm -f {APT_UPDATES_HOOK} {APT_UPDATES}")


def _sh(site, host: str, command: str) -> str:  # type: ignore[no-untyped-def]
    result = site.ssh(host, command)
    assert result.returncode == 0, f"{host}: {command}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _apt_transactions(site, host: str) -> int:  # type: ignore[no-untyped-def]
    """How many apt transactions the host has logged (one Start-Date each in apt's history)."""
    count = _sh(site, host, "cat /var/log/apt/history.log 2>/dev/null | grep -c '^Start-Date:' || true")
    return int(count.strip() or 0)


def _apt_updates(site, host: str) -> int:  # type: ignore[no-untyped-def]
    """How many apt index refreshes the host has run since the `converged` fixture installed the hook."""
    return int(_sh(site, host, f"cat {APT_UPDATES} 2>/dev/null | wc -l").strip())


def _not_installed(site, host: str, packages: list[str]) -> list[str]:  # type: ignore[no-untyped-def]
    query = f"dpkg-query -W -f='${{Package}} ${{db:Status-Abbrev}}\\n' {' '.join(packages)} 2>/dev/null || true"
    status = _sh(site, host, query)
    installed = {line.split()[0] for line in status.splitlines() if line.split()[1:2] == ["ii"]}
    return [p for p in packages if p not in installed]


def _starts(site, host: str, unit: str, since: str) -> int:  # type: ignore[no-untyped-def]
    """How many times systemd started `unit` since the epoch time `since` (its own journal lines)."""
    journal = f"journalctl -u {unit} --since @{since} --no-pager -o cat _PID=1"
    out = _sh(site, host, f"{journal} | grep -c '^Started ' || true")
    return int(out.strip() or 0)


def _invocation(site, host: str, unit: str) -> str:  # type: ignore[no-untyped-def]
    """systemd's id of the unit's current run: it changes with every start or restart."""
    return _sh(site, host, f"systemctl show -p InvocationID --value {unit}").strip()


def _start_and_write(site, host: str, unit: str, path: str) -> tuple[Decimal, Decimal]:  # type: ignore[no-untyped-def]
    """When systemd last reported `unit` started (its journal line) and when `path` was last written."""
    journal = f"journalctl -u {unit} --no-pager -o short-unix _PID=1 | grep -F ' Started ' | tail -n 1"
    started = _sh(site, host, journal).split()
    assert started, f"{host}: systemd's journal has no start of {unit}"
    return Decimal(started[0]), Decimal(_sh(site, host, f"stat -c %.Y {path}").strip())


def _assert_started_after_written(site, host: str, unit: str, path: str) -> None:  # type: ignore[no-untyped-def]
    """The running `unit` has read `path`: systemd reported it started strictly after the file's last write."""
    started, written = _start_and_write(site, host, unit, path)
    assert started > written, f"{host}: {unit} last started at {started}, {path} written at {written}"


def test_second_run_changes_nothing(converged: Converged) -> None:
    assert_converged(converged.second, HOSTS)
    changed = {h: r["changed"] for h, r in converged.second.recap.items()}
    assert set(changed.values()) == {0}, f"changed on second run: {changed}\n{converged.second.tail(200)}"


def test_first_run_installs_in_one_apt_transaction(converged: Converged) -> None:
    """Every role's distribution packages come in one apt transaction a host (apt's own history says so)."""
    counts = converged.first_counts
    assert {h: c.transactions for h, c in counts.items()} == dict.fromkeys(HOSTS, 1), counts
    # ...and what the roles need was there after it.
    assert {h: c.not_installed for h, c in counts.items()} == dict.fromkeys(HOSTS, []), counts


def test_services_start_after_their_configuration_with_at_most_one_restart(converged: Converged) -> None:
    """A service the transaction installs starts with the package's defaults; its role then writes its
    configuration and restarts it once through its handler: it runs with the role's file, and was started
    once or twice in the first run (the package's start and that one restart)."""
    for (host, unit), (started, written) in converged.first_start_and_write.items():
        assert started > written, f"{host}: {unit} last started at {started}, its configuration written at {written}"
    starts = {(h, u): n for h, c in converged.first_counts.items() for u, n in c.starts.items() if u in CONFIGS}
    assert set(starts) == {(h, "containerd") for h in HOSTS} | {("h1", "nfs-ganesha")}
    assert all(1 <= n <= 2 for n in starts.values()), starts


def test_second_run_makes_no_apt_transaction_and_restarts_nothing(converged: Converged) -> None:
    """Converged hosts: no apt transaction, no index refresh, no service started or restarted."""
    counts = converged.second_counts
    assert {h: c.transactions for h, c in counts.items()} == dict.fromkeys(HOSTS, 0), counts
    assert {h: c.updates for h, c in counts.items()} == dict.fromkeys(HOSTS, 0), f"the index was refreshed: {counts}"
    starts = {(h, u): n for h, c in counts.items() for u, n in c.starts.items()}
    assert starts == dict.fromkeys(starts, 0), starts
    assert len(starts) == 7  # containerd and glusterd on h1-h3, nfs-ganesha on h1


def test_the_refresh_counter_sees_ansible_refreshes(converged: Converged) -> None:
    """The index-refresh count above can fail: an apt index refresh through Ansible's apt module (as the roles
    refresh it) adds one line, although the lab repository's index is unchanged (apt only gets "Hit")."""
    site = converged.site
    before = _apt_updates(site, "h2")
    result = site.ansible("h2", "-m", "ansible.builtin.apt", "-a", "update_cache=true")
    assert result.returncode == 0, result.stdout + result.stderr
    assert _apt_updates(site, "h2") == before + 1


@pytest.mark.parametrize("host", HOSTS)
def test_containerd_active_with_systemd_cgroup(converged: Converged, host: str) -> None:
    assert _sh(converged.site, host, "systemctl is-active containerd").strip() == "active"
    config = _sh(converged.site, host, "cat /etc/containerd/config.toml")
    assert "SystemdCgroup = true" in config
    assert "runtimes.nvidia" not in config  # no GPU hosts in the lab
    assert "SystemdCgroup = true" in _sh(converged.site, host, "containerd config dump")
    # The running daemon has read it: started (or restarted) after the file was last written.
    _assert_started_after_written(converged.site, host, "containerd", "/etc/containerd/config.toml")


def test_os_prepare_reports_container_limits(converged: Converged) -> None:
    out = converged.first.output
    assert "kernel modules not loaded (container host)" in out
    assert "global sysctls not set" in out
    for host in HOSTS:
        # Network-namespace sysctls are set even in a container.
        assert _sh(converged.site, host, "cat /proc/sys/net/ipv4/ip_forward").strip() == "1"


def test_gluster_volume_started_with_three_bricks(converged: Converged) -> None:
    info = _sh(converged.site, "h1", "gluster volume info kfinstall")
    assert "Status: Started" in info
    assert "Number of Bricks: 1 x 3 = 3" in info
    for host in HOSTS:
        fstype = _sh(converged.site, host, f"findmnt -no FSTYPE {GLUSTER_MOUNT}").strip()
        assert fstype == "fuse.glusterfs", host
        assert "_netdev" in _sh(converged.site, host, f"grep ' {GLUSTER_MOUNT} ' /etc/fstab")


def test_gluster_file_written_on_one_node_is_read_on_another(converged: Converged) -> None:
    token = uuid.uuid4().hex
    name = f"{GLUSTER_MOUNT}/roundtrip-{token}.txt"
    _sh(converged.site, "h2", f"echo {token} > {name}")
    assert _sh(converged.site, "h3", f"cat {name}").strip() == token
    assert _sh(converged.site, "h1", f"cat {name}").strip() == token
    _sh(converged.site, "h1", f"rm -f {name}")


def test_nfs_export_served_and_used(converged: Converged) -> None:
    server = converged.site.addresses["h1"]
    assert "active" in _sh(converged.site, "h1", "systemctl is-active nfs-ganesha")
    _assert_started_after_written(converged.site, "h1", "nfs-ganesha", "/etc/ganesha/ganesha.conf")
    for client in ("h2", "h3"):
        # The userspace NFS client is test tooling, not something the roles install.
        _sh(converged.site, client, "command -v nfs-cat || apt-get install -y -q libnfs-utils >/dev/null")
    token = uuid.uuid4().hex
    # Written on the server's disk, read over NFS by another host (userspace libnfs client:
    # the containers' kernel has no NFS client).
    _sh(converged.site, "h1", f"echo {token} > {EXPORT}/from-server-{token}.txt")
    read = _sh(converged.site, "h2", f"nfs-cat nfs://{server}{EXPORT}/from-server-{token}.txt")
    assert read.strip() == token
    # Written over NFS by a client, found on the server's disk.
    _sh(converged.site, "h3", f"echo {token} > /tmp/c-{token}.txt && nfs-cp /tmp/c-{token}.txt nfs://{server}{EXPORT}/from-client-{token}.txt")
    assert _sh(converged.site, "h1", f"cat {EXPORT}/from-client-{token}.txt").strip() == token


def test_kubernetes_preflight_says_why_it_stops(converged: Converged) -> None:
    out = converged.first.output
    assert "SKIPPED kubeadm, kubelet, kubectl and the cluster steps" in out
    minor = converged.extra["kf_kubernetes_minor"]
    assert f"answers, but offers no kubeadm {minor}.x" in out
    # Everything before package installation ran: the repository is configured on every node.
    for host in HOSTS:
        assert converged.site.repo_url in _sh(converged.site, host, "cat /etc/apt/sources.list.d/kubernetes.list")


def test_kubernetes_preflight_fails_precisely_when_unreachable(converged: Converged) -> None:
    # A mirror on the lab bridge where nothing listens: the run must fail and name URL and error.
    url = f"http://{urlparse(converged.site.repo_url).hostname}:9/"
    extra = {**converged.extra, "kf_kubernetes_package_mirror": url, "kf_kubernetes_packages_unreachable": "fail"}
    run = run_playbooks(converged.site.inventory, ["50-kubernetes.yml"], extra, "--limit", "h1")
    assert run.rc != 0
    assert f"packages cannot be reached from h1: GET {url}Release failed" in run.output, run.tail()
    assert "Connection refused" in run.output, run.tail()
    assert "kf_kubernetes_package_mirror" in run.output


def test_gpu_role_is_a_clear_no_op_without_a_gpu(converged: Converged) -> None:
    extra = {**converged.extra, "kf_gpu_enabled": True}
    run = run_playbooks(converged.site.inventory, ["30-gpu.yml"], extra)
    assert_converged(run, HOSTS)
    for host in HOSTS:
        message = f"{host}: no NVIDIA GPU (lspci found no 10de display or 3D controller) and not in group gpu"
        assert message in run.output
    assert {r["changed"] for r in run.recap.values()} == {0}


def test_check_mode_of_the_whole_site_is_clean(converged: Converged) -> None:
    run = run_playbooks(converged.site.inventory, ["site.yml"], converged.extra, "--check")
    print(f"\nsite.yml --check on 3 converged hosts: {run.seconds:.1f} s")
    assert_converged(run, HOSTS)
    assert {r["changed"] for r in run.recap.values()} == {0}, run.tail(200)


def _inventory_with_gpu_host(inventory: Path, host: str) -> Path:
    import yaml

    data = yaml.safe_load(inventory.read_text())
    data["all"]["children"]["gpu"] = {"hosts": {host: {}}}
    path = inventory.with_name("hosts-gpu.yml")
    path.write_text(yaml.safe_dump(data))
    return path


def test_gpu_host_previewed_in_check_mode(converged: Converged) -> None:
    inventory = _inventory_with_gpu_host(converged.site.inventory, "h2")
    extra = {**converged.extra, "kf_gpu_enabled": True}
    branch = str(extra["kf_nvidia_driver_branch"])
    before = _sh(converged.site, "h2", "cat /etc/containerd/config.toml")
    run = run_playbooks(
        inventory, ["20-containerd.yml", "30-gpu.yml"], extra, "--check", "--diff", "--limit", "h2"
    )
    print(f"\n20-containerd + 30-gpu --check --diff on a declared GPU host: {run.seconds:.1f} s")
    assert_converged(run, ["h2"])
    out = run.output
    # containerd: the nvidia runtime would be added, with the systemd cgroup driver.
    assert "+[plugins" in out and "containerd.runtimes.nvidia]" in out, run.tail(200)
    assert '+  BinaryName = "/usr/bin/nvidia-container-runtime"' in out
    # Driver: the branch pin and the NVIDIA repositories that a real run would write.
    assert f"+Pin: version {branch}.*" in out
    assert "kfinstall-nvidia-container-toolkit.list" in out
    assert f"driver branch {branch}" in out
    # Check mode changed nothing on the host.
    assert _sh(converged.site, "h2", "cat /etc/containerd/config.toml") == before
    assert _sh(converged.site, "h2", "ls /etc/apt/preferences.d/").find("kfinstall-nvidia") == -1


def test_drift_on_a_converged_host_is_repaired(converged: Converged) -> None:
    """Skipping work on converged hosts must not hide drift: a changed file, mode or stopped service is put
    back, with the one restart that needs and no other (systemd's InvocationID changes with every start)."""
    site = converged.site
    units = {(h, "containerd") for h in HOSTS} | {("h1", "nfs-ganesha"), ("h1", "glusterd")}
    before = {key: _invocation(site, *key) for key in units}
    _sh(site, "h2", "echo '# edited by hand' >> /etc/containerd/config.toml")
    _sh(site, "h3", "chmod 0600 /etc/sysctl.d/90-kfinstall.conf")
    _sh(site, "h1", "systemctl stop nfs-ganesha")
    run = run_playbooks(site.inventory, ["site.yml"], converged.extra)
    print(f"\nsite.yml after drift on 3 hosts: {run.seconds:.1f} s, recap {run.recap}")
    assert_converged(run, HOSTS)
    # ...the hosts are as the roles want them again,
    assert "edited by hand" not in _sh(site, "h2", "cat /etc/containerd/config.toml")
    _assert_started_after_written(site, "h2", "containerd", "/etc/containerd/config.toml")
    assert _sh(site, "h3", "stat -c %a /etc/sysctl.d/90-kfinstall.conf").strip() == "644"
    assert _sh(site, "h1", "systemctl is-active nfs-ganesha").strip() == "active"
    # ...with exactly the restarts the drift needed: containerd on h2 and nfs-ganesha on h1, nothing else.
    after = {key: _invocation(site, *key) for key in units}
    restarted = {key for key in units if after[key] != before[key]}
    assert restarted == {("h2", "containerd"), ("h1", "nfs-ganesha")}, restarted


def test_a_role_setting_from_the_inventory_wins_and_stays_converged(converged: Converged) -> None:
    """A role variable set in the inventory wins over the role's default, restarts the service once, and
    the next run changes nothing."""
    site, plays = converged.site, ["10-os.yml", "20-containerd.yml"]
    host_vars = Path(site.inventory).parent / "host_vars" / "h3.yml"
    host_vars.parent.mkdir(exist_ok=True)
    host_vars.write_text("containerd_systemd_cgroup: false\n")
    try:
        before, mark = _invocation(site, "h3", "containerd"), _mark(site, "h3")
        changed = run_playbooks(site.inventory, plays, converged.extra, "--limit", "h3")
        assert_converged(changed, ["h3"])
        assert "SystemdCgroup = false" in _sh(site, "h3", "cat /etc/containerd/config.toml")
        assert _invocation(site, "h3", "containerd") != before
        assert _starts(site, "h3", "containerd", mark.time) == 1
        _assert_started_after_written(site, "h3", "containerd", "/etc/containerd/config.toml")
        again = run_playbooks(site.inventory, plays, converged.extra, "--limit", "h3")
        assert_converged(again, ["h3"])
        assert again.recap["h3"]["changed"] == 0, again.tail(200)
    finally:
        host_vars.unlink()
        restored = run_playbooks(site.inventory, plays, converged.extra, "--limit", "h3")
    assert_converged(restored, ["h3"])
    assert "SystemdCgroup = true" in _sh(site, "h3", "cat /etc/containerd/config.toml")


def test_ganesha_export_on_overlayfs_is_refused(converged: Converged) -> None:
    """nfs-ganesha's VFS backend cannot export overlayfs: the role stops with the fix before writing anything."""
    export = f"/var/tmp/kfinstall-overlay-{uuid.uuid4().hex[:8]}"
    extra = {**converged.extra, "kf_nfs_export_path": export}
    before = _invocation(converged.site, "h1", "nfs-ganesha")
    run = run_playbooks(converged.site.inventory, ["10-os.yml", "40-storage.yml"], extra, "--limit", "h1")
    assert run.rc != 0, run.tail()
    assert run.recap["h1"]["failed"] == 1, run.tail()
    assert "is on overlayfs, which nfs-ganesha's VFS backend" in run.output
    # Nothing written, the running server and its configuration left alone.
    assert converged.site.ssh("h1", f"test -e {export}").returncode != 0
    assert _invocation(converged.site, "h1", "nfs-ganesha") == before
    assert "/srv/nfs/kfinstall" in _sh(converged.site, "h1", "cat /etc/ganesha/ganesha.conf")


HUNG_GANESHA = "/etc/systemd/system/nfs-ganesha.service.d/zz-kfinstall-test-hung.conf"


def test_a_ganesha_that_never_answers_fails_with_its_state_and_log(converged: Converged) -> None:
    """A restarted nfs-ganesha that systemd calls started but that never listens (stood in for by a drop-in
    whose process only sleeps) fails the run on that host with the unit's state, the listening sockets and
    ganesha's own log, not only wait_for's "Timeout"; the next run with the server back converges."""
    site = converged.site
    _sh(site, "h1", f"mkdir -p {Path(HUNG_GANESHA).parent} && printf '%s\\n' '[Service]' 'Type=simple' "
                    f"'ExecStart=' 'ExecStart=/bin/sleep 600' > {HUNG_GANESHA} && systemctl daemon-reload")
    try:
        # Another protocol list changes ganesha.conf, so the handler restarts the server and waits for it.
        hung = _run_role_alone(site, "nfs_server", {**converged.extra, "nfs_server_ganesha_protocols": "4",
                                                    "nfs_server_port_timeout": 3})
    finally:
        _sh(site, "h1", f"rm -f {HUNG_GANESHA} && systemctl daemon-reload")
        restored = _run_role_alone(site, "nfs_server", converged.extra)
    assert hung.rc != 0 and hung.recap["h1"]["failed"] == 1, hung.tail()
    assert "nfs-ganesha on h1 did not answer on port 2049 within 3 s" in hung.output, hung.tail()
    for part in ("Active: active (running)", "--- listening TCP sockets", "--- /var/log/ganesha/ganesha.log",
                 "--- journal"):
        assert part in hung.output, (part, hung.tail())
    assert_converged(restored, ["h1"])
    assert "Protocols = 3, 4;" in _sh(site, "h1", "cat /etc/ganesha/ganesha.conf")
    assert _nfs_reachable(site, "h2").returncode == 0


PROBE_MOUNT = "/mnt/kfinstall-access-probe"


def _nfs_reachable(site, client: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    """List the export from `client` over NFS (userspace libnfs: the containers' kernel has no NFS client)."""
    _sh(site, client, "command -v nfs-ls >/dev/null || apt-get install -y -q libnfs-utils >/dev/null")
    return site.ssh(client, f"nfs-ls nfs://{site.addresses['h1']}{EXPORT}")


def _gluster_mountable(site, client: str) -> bool:  # type: ignore[no-untyped-def]
    """A fresh FUSE mount of the volume from `client` (through h1's glusterd, as the nodes mount it)."""
    command = (f"mkdir -p {PROBE_MOUNT} && timeout 60 mount -t glusterfs {site.addresses['h1']}:/kfinstall "
               f"{PROBE_MOUNT} && findmnt -no FSTYPE {PROBE_MOUNT}")
    result = site.ssh(client, command)
    site.ssh(client, f"umount {PROBE_MOUNT} 2>/dev/null; rmdir {PROBE_MOUNT} 2>/dev/null")
    return result.returncode == 0 and "fuse.glusterfs" in result.stdout


def test_storage_serves_the_cluster_hosts_and_refuses_others(converged: Converged) -> None:
    """Issue #11 item 6: the NFS export and the Gluster volume serve only the allowed clients.

    By default every cluster host (here h1-h3) may mount; then h3's address is left out of the lists
    (the role settings a narrower spec.storage.*.allowedClients-less inventory would give) and the
    storage host re-converged alone: h3 is refused by ganesha (its EXPORT has Access_Type None outside
    the CLIENT block) and by the Gluster bricks (auth.allow; h3 mounts through h1's glusterd, so it gets
    the untrusted volfile), while h2 still mounts. Putting the default back lets h3 in again, so the
    refusal came from the list and nothing else.
    """
    site = converged.site
    addresses = [site.addresses[h] for h in HOSTS]
    # Converged by site.yml: the lists are the cluster's hosts, nothing wider.
    assert f"Clients = {', '.join(addresses)};" in _sh(site, "h1", "cat /etc/ganesha/ganesha.conf")
    assert f"auth.allow: {','.join(addresses)}" in _sh(site, "h1", "gluster volume info kfinstall")
    for host in ("h2", "h3"):
        assert _nfs_reachable(site, host).returncode == 0, host
        assert _gluster_mountable(site, host), host

    narrowed = {**converged.extra, "nfs_server_allowed_clients": addresses[:2], "glusterfs_allowed_clients": addresses[:2]}
    run = run_playbooks(site.inventory, ["40-storage.yml"], narrowed, "--limit", "h1")
    print(f"\n40-storage.yml on h1 with h3 left out: {run.seconds:.1f} s")
    assert_converged(run, ["h1"])
    try:
        refused = _nfs_reachable(site, "h3")
        assert refused.returncode != 0, refused.stdout
        assert not _gluster_mountable(site, "h3")
        assert _nfs_reachable(site, "h2").returncode == 0
        assert _gluster_mountable(site, "h2")
    finally:
        # On every host: a node refused while the list was narrow may have lost its volume mount.
        restored = run_playbooks(site.inventory, ["40-storage.yml"], converged.extra)
    assert_converged(restored, HOSTS)
    assert _nfs_reachable(site, "h3").returncode == 0
    assert _gluster_mountable(site, "h3")


# Each host role run alone must leave the hosts exactly as site.yml does: same files, services and
# packages (issue 14: a role behaves the same run alone or under site.yml). The hosts each role's own
# play targets in site.yml, and what to undo on a host first so that the role alone has work to do.
ROLE_HOSTS = {
    "os_prepare": "kube_control_plane:kube_node:nfs_server:gluster",
    "containerd": "kube_control_plane:kube_node",
    "nfs_server": "nfs_server",
    "nfs_client": "kube_node",
    "glusterfs": "gluster:kube_node",
}


@dataclass(frozen=True)
class Undo:
    host: str
    command: str
    purged: tuple[str, ...] = ()  # packages the command purges, and nothing else; the role reinstalls them
    service: str = ""  # a service the role must (re)start with the configuration it writes again


UNDO = {
    "os_prepare": Undo("h2", "rm -f /etc/sysctl.d/90-kfinstall.conf /etc/apt/sources.list.d/kfinstall-lab.list"),
    "containerd": Undo("h2", "rm -f /etc/containerd/config.toml", ("containerd",), "containerd"),
    "nfs_server": Undo("h1", "systemctl stop nfs-ganesha && rm -f /etc/ganesha/ganesha.conf", service="nfs-ganesha"),
    "nfs_client": Undo("h2", "true", ("nfs-common",)),
    "glusterfs": Undo("h2", f"umount {GLUSTER_MOUNT} && sed -i '\\# {GLUSTER_MOUNT} #d' /etc/fstab"),
}
SNAPSHOT = f"""
for p in /etc/apt/sources.list.d/kfinstall-lab.list /etc/sysctl.d/90-kfinstall.conf /etc/modules-load.d/kfinstall.conf \\
         /etc/containerd/config.toml /etc/ganesha/ganesha.conf {EXPORT} /data/gluster/kfinstall; do
  if [ -e "$p" ]; then stat -c '%n %F %a %U %G' "$p"; [ -f "$p" ] && sha1sum "$p"; else echo "$p absent"; fi
done
for u in containerd nfs-ganesha glusterd chrony; do echo "$u $(systemctl is-active $u) $(systemctl is-enabled $u 2>/dev/null)"; done
grep ' {GLUSTER_MOUNT} ' /etc/fstab; findmnt -no FSTYPE {GLUSTER_MOUNT} || echo 'not mounted'
dpkg-query -W -f='${{Package}} ${{db:Status-Abbrev}}\\n' containerd runc nfs-common nfs-ganesha glusterfs-server \\
  glusterfs-client chrony socat 2>/dev/null | sort
"""


def _snapshot(site) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {host: _sh(site, host, SNAPSHOT) for host in HOSTS}


def _run_role_alone(site, role: str, extra: dict) -> PlaybookRun:  # type: ignore[no-untyped-def]
    playbook = Path(site.inventory).parent / f"alone-{role}.yml"
    playbook.write_text(
        f"- hosts: '{ROLE_HOSTS[role]}'\n  become: true\n  gather_facts: true\n  roles: [{role}]\n")
    return run_playbooks(site.inventory, [str(playbook)], extra)


@pytest.mark.parametrize("role", list(ROLE_HOSTS))
def test_a_role_alone_leaves_the_hosts_as_site_yml_does(converged: Converged, role: str) -> None:
    site = converged.site
    as_site_yml_left_them = _snapshot(site)
    # Alone on the converged hosts: the role writes, installs and restarts nothing...
    alone = _run_role_alone(site, role, converged.extra)
    assert_converged(alone, [h for h in HOSTS if h in alone.recap])
    assert {h: r["changed"] for h, r in alone.recap.items()} == dict.fromkeys(alone.recap, 0), alone.tail(200)
    # ...and with its work undone on a host, it alone puts the host back to what site.yml left,
    undo = UNDO[role]
    _sh(site, undo.host, undo.command)
    if undo.purged:
        _purge(site, undo.host, undo.purged)
    transactions = _apt_transactions(site, undo.host)
    redone = _run_role_alone(site, role, converged.extra)
    print(f"\n{role} alone after its work was undone on {undo.host}: {redone.seconds:.1f} s, recap {redone.recap}")
    assert_converged(redone, [h for h in HOSTS if h in redone.recap])
    assert _snapshot(site) == as_site_yml_left_them
    # ...installing the packages it owns itself, in one apt transaction, when they were purged.
    assert _apt_transactions(site, undo.host) - transactions == (1 if undo.purged else 0), redone.tail(200)
    if undo.service:  # ...and the service runs with the file the role wrote, not a package default.
        _assert_started_after_written(site, undo.host, undo.service, CONFIGS[undo.service])


def _purge(site, host: str, packages: tuple[str, ...]) -> None:  # type: ignore[no-untyped-def]
    """Purge exactly `packages`: apt's simulation first, so that no package depending on them goes too
    (the role would not put that back, and the snapshot may not list it)."""
    names = " ".join(packages)
    simulated = _sh(site, host, f"apt-get -s purge {names}")
    purged = sorted(line.split()[1] for line in simulated.splitlines() if line.startswith("Purg "))
    assert purged == sorted(packages), f"{host}: apt-get purge {names} would purge {purged}"
    _sh(site, host, f"apt-get -q -y purge {names} >/dev/null")
