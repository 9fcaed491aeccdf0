"""`lab up`, `lab down` and `lab status`: the ordered steps, each skipped when already done."""

from __future__ import annotations

import contextlib
import fcntl
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

from installer.config.ssh import site_known_hosts
from installer.errors import ConfigError, PhaseFailed
from installer.lab import fleet, hostprep, image, inventory, outputs, repo, vms
from installer.lab._proc import run
from installer.lab.settings import MAX_HOSTS, MAX_VMS, LabSettings, host_name, vm_name
from installer.lab.ssh import port_open, ssh_run, wait_for_ssh
from installer.lab.state import LabRecord, LabStatus, MachineStatus

Reporter = Callable[[str], None]
HOST_SSH_TIMEOUT = 90.0
# TCG guests boot in ~20 s alone but take minutes when several share a busy 2-core machine.
VM_SSH_TIMEOUT = 600.0


def _quiet(_: str) -> None:
    pass


def lab_settings(work_dir: Path | None, settings: LabSettings | None = None) -> LabSettings:
    """`settings` when given (a second, named lab), else the default lab in `work_dir`."""
    if settings is not None:
        return settings
    return LabSettings() if work_dir is None else LabSettings(work_dir=work_dir.resolve())


def _validate_counts(hosts: int, vms: int) -> None:
    if not 1 <= hosts <= MAX_HOSTS:
        raise ConfigError(f"--hosts must be between 1 and {MAX_HOSTS} (got {hosts})")
    if not 0 <= vms <= MAX_VMS:
        raise ConfigError(f"--vms must be between 0 and {MAX_VMS} (got {vms})")


class _Clock:
    """Prefixes each progress line with the seconds since `lab up` started."""

    def __init__(self, report: Reporter) -> None:
        self._report = report
        self._start = time.monotonic()

    def __call__(self, message: str) -> None:
        self._report(f"[{time.monotonic() - self._start:6.1f}s] {message}")


@contextlib.contextmanager
def _exclusive(settings: LabSettings, say: Reporter) -> Iterator[None]:
    """One `lab up`/`lab down` at a time per work dir (test sessions and operators share it)."""
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    with (settings.work_dir / "lab.lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say("waiting for another `kfinstall lab` run on this work dir to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


# --- up ------------------------------------------------------------------------------------------

def lab_up(
    hosts: int = 3,
    vms: int = 0,
    *,
    out: Path,
    work_dir: Path | None = None,
    report: Reporter = _quiet,
    settings: LabSettings | None = None,
) -> LabStatus:
    """Bring up `hosts` podman hosts and `vms` qemu VMs, write OUT/hosts.yml and OUT/kfinstall.yaml.

    Idempotent: every step checks what exists and does only what is missing, so a second call
    with the same arguments is a fast no-op that rewrites the same files. `settings` selects
    a lab other than the default one (name, subnet, work dir); it overrides `work_dir`.
    """
    _validate_counts(hosts, vms)
    outputs.check_out_dir(out)  # before any machine starts: a hosts.yml kfinstall did not write stops it
    settings = lab_settings(work_dir, settings)
    say = _Clock(report)
    hostprep.require_root()
    hostprep.require_debian()
    with _exclusive(settings, say):
        _up(settings, hosts, vms, out, say)
    return lab_status(out=out, settings=settings)


def _up(settings: LabSettings, hosts: int, vms: int, out: Path, say: Reporter) -> None:
    record = LabRecord.load(settings)
    _prepare_machine(settings, record, with_vms=vms > 0, say=say)
    _prepare_artifacts(settings, with_vms=vms > 0, say=say)
    host_specs = _host_specs(settings, hosts, vms)
    bridge = _start_hosts(settings, record, host_specs, say)
    _start_repo_server(settings, record, say)
    vm_specs = _vm_specs(settings, vms)
    _start_vms(settings, record, vm_specs, bridge, say)
    _wait_ready(settings, host_specs, vm_specs, say)
    _configure_vms(settings, vm_specs, _etc_hosts(settings, hosts, vms))
    _write_outputs(settings, record, out, hosts=host_specs, vm_specs=vm_specs)
    record.hosts, record.vms = hosts, vms
    record.save(settings)
    say(f"lab up: {hosts} host(s), {vms} VM(s) ready; inventory {out / inventory.INVENTORY_FILE}")


def _prepare_machine(settings: LabSettings, record: LabRecord, *, with_vms: bool, say: Reporter) -> None:
    """Host packages, then the host changes podman needs, each recorded before the next step."""
    # Before anything the lab does to this kernel (package scripts, netavark, privileged hosts'
    # systemd-sysctl all write host sysctls), so `lab down` can put it back.
    hostprep.snapshot_sysctls(settings.run_dir)
    wanted = hostprep.FLEET_PACKAGES + (hostprep.VM_PACKAGES if with_vms else ())
    missing = hostprep.missing_packages(wanted)
    if missing:
        say(f"installing host packages: {' '.join(missing)}")
        hostprep.install_packages(missing, settings.log_dir / "host-packages.log")
    if hostprep.ensure_podman_dropin():
        record.created_podman_dropin = True
        hostprep.note_host_changes(created_dropin=True)
        say(f"wrote {hostprep.PODMAN_DROPIN}")
    for controller in hostprep.move_cgroup2_controllers_to_v1():
        if controller not in record.mounted_cgroups:  # a record restored from a disk snapshot may list it
            record.mounted_cgroups.append(controller)
        hostprep.note_host_changes(mounted_cgroups=[controller])
        say(f"bound cgroup controller {controller} to a v1 hierarchy")
    record.subnet, record.repo_port = str(settings.subnet), settings.repo_port
    record.save(settings)
    if missing or (record.created_podman_dropin and not image.host_image_present(settings)):
        fleet.require_podman_works()


def _prepare_artifacts(settings: LabSettings, *, with_vms: bool, say: Reporter) -> None:
    """SSH key, rootfs, host image, apt repo and (when asked) the VM disk; each only when stale."""
    image.ensure_ssh_key(settings)
    if not image.rootfs_ready(settings):
        say("building the Debian rootfs with debootstrap (about a minute the first time)")
        image.build_rootfs(settings)
    if not image.host_image_current(settings):
        say("importing the rootfs into podman and building the host image")
        image.customize_rootfs(settings)
        image.import_rootfs(settings)
        image.build_host_image(settings)
    if not repo.repo_current(settings):
        say("building the local apt repository from packages.txt")
        count = repo.build_repo(settings)
        say(f"apt repository ready: {count} packages")
    if with_vms and not vms.vm_image_current(settings):
        say("building the VM disk image (rootfs + Debian cloud kernel)")
        vms.build_vm_image(settings)


def _host_specs(settings: LabSettings, hosts: int, vm_count: int) -> list[fleet.HostSpec]:
    # Containers resolve only hosts and the repo: adding or removing VMs must not re-create
    # (and so wipe) hosts a test has already converged. VMs are reached by address. Adding or
    # removing hosts keeps the running ones too (_as_in_other_sizes).
    etc_hosts = tuple(_etc_hosts(settings, hosts, 0))
    return [
        fleet.HostSpec(host_name(i), settings.container_name(host_name(i)), settings.host_ip(i), etc_hosts)
        for i in range(1, hosts + 1)
    ]


def _as_in_other_sizes(settings: LabSettings, spec: fleet.HostSpec, image: str) -> set[str]:
    """The digests of `spec` in a lab of any other number of hosts. Adding a host (a worker added with
    `kfinstall up --limit`) or removing one must not re-create, and so wipe, the hosts already converged:
    a host kept that way resolves the hosts it started with; kfinstall reaches every host by address."""
    return {fleet.spec_digest(replace(spec, etc_hosts=tuple(_etc_hosts(settings, count, 0))), image)
            for count in range(1, MAX_HOSTS + 1)}


def _vm_specs(settings: LabSettings, vm_count: int) -> list[vms.VmSpec]:
    return [vms.VmSpec(vm_name(i), i, settings.vm_ip(i), settings.tap_name(i)) for i in range(1, vm_count + 1)]


def _etc_hosts(settings: LabSettings, hosts: int, vm_count: int) -> list[tuple[str, str]]:
    entries = [(host_name(i), settings.host_ip(i)) for i in range(1, hosts + 1)]
    entries += [(vm_name(i), settings.vm_ip(i)) for i in range(1, vm_count + 1)]
    entries.append(("repo", settings.gateway))
    return entries


def _start_hosts(settings: LabSettings, record: LabRecord, specs: list[fleet.HostSpec], say: Reporter) -> str:
    """Network and host containers; returns the bridge's interface name."""
    bridge = fleet.ensure_network(settings)
    existing = fleet.lab_containers(settings)
    wanted = {spec.container for spec in specs}
    extra = sorted(name for name in existing if name not in wanted)
    if extra:
        say(f"removing hosts no longer wanted: {' '.join(extra)}")
        fleet.remove_containers(extra)
    image_id = fleet.image_id(settings)
    started = [
        spec.name for spec in specs
        if fleet.ensure_host(settings, spec, existing.get(spec.container), image_id,
                             _as_in_other_sizes(settings, spec, image_id))
    ]
    if started:
        say(f"started {' '.join(started)}")
    # netavark switches ip_forward on at every container start; the lab never routes.
    hostprep.restore_ip_forward(settings.run_dir)
    if record.guard_bridge and record.guard_bridge != bridge:
        hostprep.remove_forward_guard(record.guard_bridge)  # the network was re-created under a new name
    hostprep.ensure_forward_guard(bridge)
    record.guard_bridge = bridge
    record.save(settings)
    return bridge


def _start_repo_server(settings: LabSettings, record: LabRecord, say: Reporter) -> None:
    if repo.server_pid(settings) is None:
        say(f"serving the apt repository on {settings.repo_url}")
    record.repo_pid = repo.start_server(settings)
    record.save(settings)


def _start_vms(
    settings: LabSettings, record: LabRecord, specs: list[vms.VmSpec], bridge: str, say: Reporter
) -> None:
    wanted = {spec.name for spec in specs}
    for name in sorted(set(record.vm_pids) - wanted):
        say(f"stopping {name}")
        vms.request_poweroff(settings, name, _vm_address(settings, name))
        vms.stop_vm(settings, name)
        record.vm_pids.pop(name, None)
    for spec in specs:
        if vms.vm_pid(settings, spec.name) is None:
            say(f"booting {spec.name} (qemu TCG)")
        record.vm_pids[spec.name] = vms.start_vm(settings, spec, bridge)
        if spec.tap not in record.created_taps:
            record.created_taps.append(spec.tap)
        record.save(settings)


def _wait_ready(
    settings: LabSettings, hosts: list[fleet.HostSpec], vm_specs: list[vms.VmSpec], say: Reporter
) -> None:
    wait_for_ssh(settings.ssh_key, {h.name: h.address for h in hosts}, HOST_SSH_TIMEOUT)
    say(f"SSH ready on {len(hosts)} host(s)")
    if vm_specs:
        wait_for_ssh(settings.ssh_key, {v.name: v.address for v in vm_specs}, VM_SSH_TIMEOUT, poll=1.0)
        say(f"SSH ready on {len(vm_specs)} VM(s)")


def _configure_vms(settings: LabSettings, specs: list[vms.VmSpec], etc_hosts: list[tuple[str, str]]) -> None:
    for spec in specs:
        vms.configure_vm(settings, spec, etc_hosts)


def _write_outputs(
    settings: LabSettings,
    record: LabRecord,
    out: Path,
    *,
    hosts: list[fleet.HostSpec],
    vm_specs: list[vms.VmSpec],
) -> None:
    data = inventory.build_inventory(
        [inventory.LabMachine(h.name, h.address) for h in hosts],
        [inventory.LabMachine(v.name, v.address) for v in vm_specs],
        settings.ssh_key,
        settings.repo_url,
    )
    outputs.write_site_files(out, data)  # hosts.yml replaced only while it is kfinstall's (installer.owned)
    known_hosts = site_known_hosts(out)
    if known_hosts is not None:  # else kfinstall.yaml names no cluster, which `up` reports itself
        inventory.write_known_hosts(known_hosts, _host_keys(settings, hosts, vm_specs))
    record.out_dir = str(out.resolve())


HOST_KEY_FILES = tuple(f"/etc/ssh/ssh_host_{kind}_key.pub" for kind in ("ed25519", "ecdsa", "rsa"))


def _host_keys(
    settings: LabSettings, hosts: list[fleet.HostSpec], vm_specs: list[vms.VmSpec]
) -> dict[str, list[str]]:
    """address -> the public host keys of each machine the lab made, read without trusting the network:
    from inside the container (podman exec); a VM's over the lab's own key on the tap it is wired to."""
    keys = {}
    for host in hosts:
        proc = run(["podman", "exec", host.container, "cat", *HOST_KEY_FILES], check=False)
        keys[host.address] = inventory.public_keys(proc.stdout)
    for vm in vm_specs:
        proc = ssh_run(settings.ssh_key, vm.address, "cat " + " ".join(HOST_KEY_FILES))
        keys[vm.address] = inventory.public_keys(proc.stdout)
    missing = sorted(address for address, found in keys.items() if not found)
    if missing:
        raise PhaseFailed(f"no SSH host key could be read from {', '.join(missing)}; run `kfinstall lab up` again")
    return keys


# --- down ----------------------------------------------------------------------------------------

def lab_down(
    work_dir: Path | None = None,
    *,
    purge: bool = False,
    report: Reporter = _quiet,
    settings: LabSettings | None = None,
) -> None:
    """Remove every machine, network, server and host change `lab up` made; safe to run twice.

    With `purge`, also drop the images, rootfs, apt repo, VM disk and SSH key (the download
    caches under WORK_DIR/cache are kept so a rebuild does not hit the mirror again).
    """
    settings = lab_settings(work_dir, settings)
    say = _Clock(report)
    hostprep.require_root()
    with _exclusive(settings, say):
        _down(settings, purge, say)


def _down(settings: LabSettings, purge: bool, say: Reporter) -> None:
    record = LabRecord.load(settings)
    _stop_vms(settings, record, say)
    if hostprep.missing_packages(("podman",)) == []:
        removed = fleet.remove_all_containers(settings)
        if removed:
            say(f"removed hosts: {' '.join(removed)}")
    pid = repo.stop_server(settings)
    if pid is not None:
        say(f"stopped the repo server (pid {pid})")
    podman_present = hostprep.missing_packages(("podman",)) == []
    bridge = record.guard_bridge or (fleet.bridge_name(settings) if podman_present else None)
    if bridge:
        hostprep.remove_forward_guard(bridge)
    if podman_present and fleet.remove_network(settings):
        say(f"removed network {settings.network}")
    if podman_present and fleet.any_lab_containers():
        # Shared with the other lab: its hosts still need podman's fix, and its own sysctl
        # changes must not be mistaken for the machine's original values.
        hostprep.restore_ip_forward(settings.run_dir)
        say("another lab still runs here: sysctls, the podman drop-in and cgroup fix are left to its `lab down`")
        # What this lab changed on the machine becomes the last lab's to undo.
        hostprep.note_host_changes(created_dropin=record.created_podman_dropin, mounted_cgroups=record.mounted_cgroups)
    else:
        hostprep.restore_sysctls(settings.run_dir, say)
        _undo_podman_host_changes(record, say)
    _remove_nested_containerd_cgroups()
    if purge:
        _purge(settings, say)
    _remove_inventory(record, say)
    (settings.run_dir / "state.json").unlink(missing_ok=True)
    say("lab down: done")


def _stop_vms(settings: LabSettings, record: LabRecord, say: Reporter) -> None:
    """All guests are asked to power off first, so their shutdowns overlap."""
    recorded = set(record.vm_pids) | {p.stem for p in settings.run_dir.glob("vm*.pid")}
    names = sorted(n for n in recorded if n.removeprefix("vm").isdigit())
    for name in names:
        vms.request_poweroff(settings, name, _vm_address(settings, name))
    for name in names:
        if vms.stop_vm(settings, name) is not None:
            say(f"stopped {name}")
    taps = set(record.created_taps) | {settings.tap_name(int(n.removeprefix("vm"))) for n in names}
    for tap in sorted(taps):
        vms.remove_tap(tap)


def _vm_address(settings: LabSettings, name: str) -> str:
    return settings.vm_ip(int(name.removeprefix("vm")))


def _remove_nested_containerd_cgroups() -> None:
    """A containerd nested in a privileged host leaves empty k8s.io cgroups at the host's hierarchy roots."""
    for leftover in Path("/sys/fs/cgroup").glob("*/k8s.io"):
        for child in sorted((p for p in leftover.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                child.rmdir()
        with contextlib.suppress(OSError):
            leftover.rmdir()


def _undo_podman_host_changes(record: LabRecord, say: Reporter) -> None:
    """The last lab on this machine undoes the podman fixes any lab made (machine-wide record)."""
    created, cgroups = hostprep.load_host_changes()
    created = created or record.created_podman_dropin
    cgroups = sorted(set(cgroups) | set(record.mounted_cgroups))
    if cgroups:
        hostprep.unmount_cgroup_controllers(cgroups)
        say(f"released cgroup controller(s): {' '.join(cgroups)}")
    if created:
        hostprep.remove_podman_dropin()
        say(f"removed {hostprep.PODMAN_DROPIN}")
    hostprep.clear_host_changes()


def _remove_inventory(record: LabRecord, say: Reporter) -> None:
    """hosts.yml names machines that no longer exist; kfinstall.yaml and secrets.yml are the operator's.

    Removed only while it holds what `lab up` wrote (installer.owned); an edited one is kept.
    """
    if record.out_dir:
        for name in outputs.remove_inventory(Path(record.out_dir)):
            say(f"kept {Path(record.out_dir) / name}: not what `lab up` wrote")


def _purge(settings: LabSettings, say: Reporter) -> None:
    import shutil

    image.remove_images(settings)
    for path in (settings.rootfs_dir, settings.repo_dir, settings.vm_dir, settings.image_context_dir,
                 settings.ssh_key.parent, settings.run_dir):
        shutil.rmtree(path, ignore_errors=True)
    say(f"purged images, rootfs, repo, VM disk and SSH key (caches kept in {settings.cache_dir})")


# --- status --------------------------------------------------------------------------------------

def lab_status(
    work_dir: Path | None = None, *, out: Path | None = None, settings: LabSettings | None = None
) -> LabStatus:
    """What is running now, read from podman, the run record and a TCP probe of each SSH port."""
    settings = lab_settings(work_dir, settings)
    hostprep.require_root()
    record = LabRecord.load(settings)
    podman_present = hostprep.missing_packages(("podman",)) == []
    containers = fleet.lab_containers(settings) if podman_present else {}
    machines = _host_statuses(settings, record, containers) + _vm_statuses(settings, record)
    out_dir = out or (Path(record.out_dir) if record.out_dir else None)
    inventory_path = out_dir / inventory.INVENTORY_FILE if out_dir else None
    config_path = out_dir / inventory.CONFIG_FILE if out_dir else None
    network = fleet.network_info(settings) if podman_present else None
    return LabStatus(
        work_dir=str(settings.work_dir),
        network=settings.network,
        subnet=str(settings.subnet),
        bridge=_live_bridge(network),
        network_exists=network is not None,
        repo_url=settings.repo_url,
        repo_serving=repo.server_pid(settings) is not None and repo.serving(settings),
        image_present=podman_present and image.host_image_present(settings),
        machines=machines,
        inventory=str(inventory_path) if inventory_path and inventory_path.exists() else None,
        config=str(config_path) if config_path and config_path.exists() else None,
    )


def _live_bridge(network: dict[str, object] | None) -> str | None:
    """netavark creates the bridge with the first host and deletes it with the last."""
    name = str(network["network_interface"]) if network else None
    return name if name and fleet.link_exists(name) else None


def _host_statuses(
    settings: LabSettings, record: LabRecord, containers: dict[str, fleet.ContainerState]
) -> list[MachineStatus]:
    count = max(record.hosts, _highest_host_index(containers))
    statuses = []
    for i in range(1, count + 1):
        name, address = host_name(i), settings.host_ip(i)
        current = containers.get(settings.container_name(name))
        state = "missing" if current is None else "running" if current.running else "stopped"
        statuses.append(MachineStatus(name, "container", address, state, state == "running" and port_open(address)))
    return statuses


def _highest_host_index(containers: dict[str, fleet.ContainerState]) -> int:
    indexes = [int(n.rsplit("-h", 1)[1]) for n in containers if n.rsplit("-h", 1)[-1].isdigit()]
    return max(indexes, default=0)


def _vm_statuses(settings: LabSettings, record: LabRecord) -> list[MachineStatus]:
    statuses = []
    for i in range(1, record.vms + 1):
        name, address = vm_name(i), settings.vm_ip(i)
        state = "running" if vms.vm_pid(settings, name) is not None else "missing"
        statuses.append(MachineStatus(name, "vm", address, state, state == "running" and port_open(address)))
    return statuses
