"""The lab's local apt repository: Debian packages the roles need, served on the bridge gateway only.

Lab hosts reach no mirror. The host's apt resolves the packages in packages.txt against the lab
rootfs's dpkg status (download-only), so exactly the missing .debs and their dependencies land in
a flat repository; apt-ftparchive indexes it and `python -m http.server` serves it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

from installer.errors import PhaseFailed
from installer.lab._proc import run
from installer.lab.image import rootfs_recipe
from installer.lab.settings import LabSettings

STAMP = ".kfinstall-repo"
PID_FILE = "repo-http.pid"


def package_list() -> list[str]:
    """Package names from packages.txt (comments and blank lines ignored, order kept, no duplicates)."""
    text = resources.files("installer.lab").joinpath("packages.txt").read_text()
    names: list[str] = []
    for line in text.splitlines():
        name = line.split("#", 1)[0].strip()
        if name and name not in names:
            names.append(name)
    return names


def repo_recipe() -> str:
    data = "\n".join([rootfs_recipe(), *sorted(package_list())])
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def repo_current(settings: LabSettings) -> bool:
    stamp = settings.repo_dir / STAMP
    return stamp.exists() and stamp.read_text().strip() == repo_recipe()


def build_repo(settings: LabSettings) -> int:
    """Download the packages with their dependencies and index them; returns the number of .debs."""
    repo = settings.repo_dir
    debs = repo / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    (repo / STAMP).unlink(missing_ok=True)
    log = settings.log_dir / "build-repo.log"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "-q", "update"], env=env, log=log)
    run(
        ["apt-get", "-q", "-y", "--download-only",
         "-o", f"Dir::State::status={settings.rootfs_dir / 'var/lib/dpkg/status'}",
         "-o", f"Dir::Cache::archives={debs}",
         # the host's own apt may be busy; this run only reads its lists and writes into `debs`
         "-o", "Debug::NoLocking=1",
         "-o", "APT::Install-Recommends=true",
         "install", *package_list()],
        env=env, log=log,
    )
    shutil.rmtree(debs / "partial", ignore_errors=True)
    (debs / "lock").unlink(missing_ok=True)
    _index(repo, log)
    (repo / STAMP).write_text(repo_recipe() + "\n")
    return len(list(debs.glob("*.deb")))


def _index(repo: Path, log: Path) -> None:
    packages = run(["apt-ftparchive", "packages", "debs"], cwd=repo)
    (repo / "Packages").write_text(packages.stdout)
    run(["gzip", "-9kf", repo / "Packages"], log=log)
    # Release must not exist while apt-ftparchive runs: otherwise it lists itself with a wrong hash.
    (repo / "Release").unlink(missing_ok=True)
    release = run(["apt-ftparchive", "release", "."], cwd=repo)
    (repo / "Release").write_text(release.stdout)


# --- the HTTP server -----------------------------------------------------------------------------

def _pid_file(settings: LabSettings) -> Path:
    return settings.run_dir / PID_FILE


def server_pid(settings: LabSettings) -> int | None:
    """The PID of OUR repo server when it is running (the command line is checked, not just the PID)."""
    path = _pid_file(settings)
    if not path.exists():
        return None
    pid = int(path.read_text().strip())
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    args = [a.decode(errors="replace") for a in cmdline]
    return pid if "http.server" in args and str(settings.repo_dir) in args else None


def start_server(settings: LabSettings) -> int:
    """Serve the repository on the bridge gateway (never on 0.0.0.0); returns its PID."""
    pid = server_pid(settings)
    if pid is not None:
        return pid
    log = settings.log_dir / "repo-http.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as sink:
        # A new session so the server outlives this CLI process; `lab down` ends it by PID.
        proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(settings.repo_port),
             "--bind", settings.gateway, "--directory", str(settings.repo_dir)],
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    _pid_file(settings).write_text(f"{proc.pid}\n")
    _wait_serving(settings, proc)
    return proc.pid


def serving(settings: LabSettings, timeout: float = 2.0) -> bool:
    try:
        # the URL is always http://<lab gateway>:<port>, built from LabSettings
        with urllib.request.urlopen(f"{settings.repo_url}/Release", timeout=timeout) as reply:  # noqa: S310
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _wait_serving(settings: LabSettings, proc: subprocess.Popen[bytes], limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PhaseFailed(
                f"the lab repo server exited (code {proc.returncode}); see {settings.log_dir / 'repo-http.log'}"
            )
        if serving(settings, timeout=0.5):
            return
        time.sleep(0.1)
    raise PhaseFailed(f"the lab repo server does not answer on {settings.repo_url}")


def stop_server(settings: LabSettings) -> int | None:
    """End our repo server by its recorded PID; returns the PID it ended."""
    pid = server_pid(settings)
    if pid is not None:
        os.kill(pid, 15)
        _wait_gone(pid)
    _pid_file(settings).unlink(missing_ok=True)
    return pid


def _wait_gone(pid: int, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and _alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """True while the process runs; a zombie (exited, not yet reaped by its parent) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
