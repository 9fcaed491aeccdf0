"""The platform phase's only door to Pulumi's engine: the Automation API with an inline program.

State lives in a file backend under STATE/pulumi (no Pulumi Cloud account), encrypted with the
passphrase from secrets.yml. Update checks and automatic plugin downloads are off, so an
air-gapped site fails fast with a fix instead of hanging on the network. The preflight runs before
anything else: the Automation API itself only reports a bare `FileNotFoundError: 'pulumi'` (and
leaves an empty temp dir behind) when the CLI is missing.

This is the only module that imports `pulumi.automation`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from installer.adapters import kube
from installer.config.resolved import ClusterConfig
from installer.errors import Interrupted, PhaseFailed, PreflightError
from installer.interrupt import forward_stops_as_sigint, run_child, stop_requested
from installer.versions import parse

PROJECT = "kfinstall"
# Provider SDK package per plugin name; which of them a site needs depends on its profile.
PROVIDER_PACKAGES = {"kubernetes": "pulumi_kubernetes", "gcp": "pulumi_gcp", "random": "pulumi_random"}
ENGINE_ENV = {
    "PULUMI_SKIP_UPDATE_CHECK": "true",
    # A missing plugin must fail fast: otherwise the CLI tries get.pulumi.com and retries for minutes.
    "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
}
CLI_TIMEOUT_S = 20
# What the CLI prints when a signal starts its clean cancel (pkg/backend/display: "^C received;
# cancelling. ..." or, in newer CLIs, "SIGTERM received; cancelling. ...").
CANCELLING = re.compile(r"received; cancelling")
OnOutput = Callable[[str], None]


@dataclass(frozen=True)
class Plugin:
    name: str
    version: str
    path: Path | None
    """Where it was found (None: missing)."""


@dataclass(frozen=True)
class Preflight:
    """What the platform phase will use: the CLI, its version and each provider plugin."""

    cli: str
    cli_version: str
    plugins: tuple[Plugin, ...]
    pulumi_home: Path


def pulumi_home() -> Path:
    return Path(os.environ.get("PULUMI_HOME") or Path.home() / ".pulumi")


def sdk_version() -> str:
    """The installed pulumi SDK's version; the CLI must be at least this (they release together)."""
    return metadata.version("pulumi")


def required_providers(cfg: ClusterConfig) -> list[str]:
    """Plugins the program needs for this site: kubernetes always, gcp on the gcp profile."""
    return ["kubernetes", "gcp"] if cfg.spec.profile == "gcp" else ["kubernetes"]


def plugin_version(name: str) -> str:
    """The plugin version the installed SDK declares in its pulumi-plugin.json."""
    package = PROVIDER_PACKAGES[name]
    meta = json.loads((resources.files(package) / "pulumi-plugin.json").read_text(encoding="utf-8"))
    return str(meta["version"])


def _plugin_path(name: str, version: str, home: Path) -> Path | None:
    # Layout from pulumi's PluginSpec.Dir(): <home>/plugins/<kind>-<name>-v<version>/pulumi-<kind>-<name>
    installed = home / "plugins" / f"resource-{name}-v{version}" / f"pulumi-resource-{name}"
    if installed.is_file():
        return installed
    ambient = shutil.which(f"pulumi-resource-{name}")  # the CLI also uses plugins found on PATH
    return Path(ambient) if ambient else None


def _cli_version(cli: str) -> str:
    try:
        done = run_child([cli, "version"], timeout=CLI_TIMEOUT_S, env={**os.environ, **ENGINE_ENV})
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unusable ({exc.__class__.__name__}: {exc})"
    return (done.stdout.strip() or done.stderr.strip() or "no output").splitlines()[0]


def _cli_problem(cli: str | None, version: str, wanted: str) -> str | None:
    install = (f"install Pulumi CLI v{wanted}: online "
               f"`curl -fsSL https://get.pulumi.com | sh -s -- --version {wanted}`; "
               f"offline unpack pulumi-v{wanted}-linux-x64.tar.gz into /opt/pulumi "
               "(giving /opt/pulumi/bin/pulumi) and put /opt/pulumi/bin on PATH")
    if cli is None:
        return f"Pulumi CLI not found: no `pulumi` on PATH; {install}"
    try:
        found = parse(version.removeprefix("v"))
    except ValueError:
        return f"Pulumi CLI at {cli} reports an unreadable version {version!r}; {install}"
    if found[0] != parse(wanted)[0] or found < parse(wanted):
        have = ".".join(map(str, found))
        return f"Pulumi CLI at {cli} is v{have}, kfinstall's SDK needs v{wanted} or newer; {install}"
    return None


def _plugin_problem(plugin: Plugin, home: Path) -> str | None:
    if plugin.path is not None:
        return None
    name, version = plugin.name, plugin.version
    expected = home / "plugins" / f"resource-{name}-v{version}" / f"pulumi-resource-{name}"
    return (f"provider plugin {name} v{version} missing (looked for {expected} and pulumi-resource-{name} on PATH); "
            f"online `pulumi plugin install resource {name} v{version}`; offline `pulumi plugin install resource "
            f"{name} v{version} --file pulumi-resource-{name}-v{version}-linux-amd64.tar.gz`")


def _kubeconfig_problem(cfg: ClusterConfig) -> list[str]:
    """Host-based profiles deploy through the site's kubeconfig (kube.kubeconfig_path); gcp's program
    builds its provider from the cluster it creates."""
    if cfg.spec.profile == "gcp":
        return []
    missing = kube.missing_kubeconfig(cfg)
    return [missing] if missing else []


def preflight(cfg: ClusterConfig, *, kubeconfig: bool = True) -> Preflight:
    """Find the CLI and every plugin at the SDKs' versions; PreflightError lists each fix (exit 3).

    `kubeconfig=False` leaves out the kubeconfig check: `up`'s preflight, when the same run's hosts phase
    writes the file before the platform phase (whose `up` checks it again)."""
    home, wanted = pulumi_home(), sdk_version()
    cli = shutil.which("pulumi")
    version = _cli_version(cli) if cli else ""
    plugins = tuple(Plugin(n, v, _plugin_path(n, v, home)) for n in required_providers(cfg)
                    for v in [plugin_version(n)])
    problems = [p for p in [_cli_problem(cli, version, wanted), *(_plugin_problem(p, home) for p in plugins)] if p]
    problems += _kubeconfig_problem(cfg) if kubeconfig else []
    if cfg.secrets is None or not cfg.secrets.pulumi_passphrase.get_secret_value():
        problems.append(f"no pulumi_passphrase: secrets.yml is missing or incomplete in {cfg.site}; "
                        f"run `kfinstall init --profile {cfg.spec.profile} {cfg.site}` to generate it")
    if problems:
        raise PreflightError("the platform phase cannot run:\n  - " + "\n  - ".join(problems))
    assert cli is not None
    return Preflight(cli=cli, cli_version=version, plugins=plugins, pulumi_home=home)


def available(cfg: ClusterConfig) -> bool:
    """True when `preview` can run (for `kfinstall plan`, which falls back to render without it)."""
    try:
        preflight(cfg)
    except PreflightError:
        return False
    return True


def backend_dir(cfg: ClusterConfig) -> Path:
    return cfg.state_dir / "pulumi"


def engine_env(cfg: ClusterConfig) -> dict[str, str]:
    """Environment for the CLI only (never os.environ: Ansible's run records dump the environment)."""
    assert cfg.secrets is not None
    return {**ENGINE_ENV, "PULUMI_BACKEND_URL": backend_dir(cfg).as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": cfg.secrets.pulumi_passphrase.get_secret_value()}


def _inline_program(cfg: ClusterConfig, installed: dict[str, Any] | None = None) -> Callable[[], None]:
    def run() -> None:
        from stacks.program import export_outputs, program

        export_outputs(program(cfg, installed))

    return run


def _installed_outputs(stack: Any) -> dict[str, Any]:
    """The outputs of the stack's last deployment ({} for a new stack): what the program keeps as it is.

    Some things a deployment made cannot change afterwards (a claim's StorageClass); the program
    reads them from here rather than from the cluster (stacks.storage.volume_classes).
    """
    return {key: out.value for key, out in stack.outputs().items() if not out.secret}


def _stack(cfg: ClusterConfig, found: Preflight) -> Any:
    from pulumi import automation as auto

    backend = backend_dir(cfg)
    work = cfg.state_dir / "pulumi-work"  # a fixed work dir: LocalWorkspace would mkdtemp one per call
    for folder in (backend, work):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings = auto.ProjectSettings(name=PROJECT, runtime="python", backend=auto.ProjectBackend(url=backend.as_uri()))
    command = auto.PulumiCommand(root=None)  # preflight proved `pulumi` on PATH has the right version
    options = auto.LocalWorkspaceOptions(work_dir=str(work), pulumi_home=str(found.pulumi_home),
                                         env_vars=engine_env(cfg), project_settings=settings,
                                         secrets_provider="passphrase", pulumi_command=command)
    return auto.create_or_select_stack(stack_name=cfg.name, project_name=PROJECT, program=_inline_program(cfg),
                                       opts=options)


@dataclass
class StackSummary:
    """What an operation did: Pulumi's result, resource changes by kind, and non-secret outputs."""

    operation: str
    result: str
    changes: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"operation": self.operation, "result": self.result, "changes": dict(self.changes),
                "outputs": dict(self.outputs), "durationSeconds": round(self.duration_s, 1)}


def _public_outputs(outputs: Any) -> dict[str, Any]:
    return {key: ("<secret>" if out.secret else out.value) for key, out in (outputs or {}).items()}


def _run(cfg: ClusterConfig, operation: str, on_output: OnOutput | None) -> StackSummary:
    from pulumi import automation as auto

    found = preflight(cfg)
    started = time.monotonic()
    announced: list[str] = []

    def watch(line: str) -> None:
        if CANCELLING.search(line):
            announced.append(line)
        if on_output is not None:
            on_output(line)

    try:
        with forward_stops_as_sigint("pulumi", cancelling=lambda: bool(announced)):
            return _operation(cfg, found, operation, watch, started)
    except auto.errors.ConcurrentUpdateError as exc:
        raise PhaseFailed(f"pulumi {operation}: another run holds the stack lock in {backend_dir(cfg)} "
                          f"(wait for it, or after a crash run `pulumi cancel` there): {_tail(exc)}") from exc
    except auto.errors.CommandError as exc:
        if stop_requested():
            raise Interrupted(f"pulumi {operation} was cancelled by the stop signal (the CLI finished the "
                              "operations in flight and saved the stack's state); run again to converge") from exc
        raise PhaseFailed(f"pulumi {operation} failed: {_tail(exc)}") from exc


def _operation(cfg: ClusterConfig, found: Preflight, operation: str, on_output: OnOutput | None,
               started: float) -> StackSummary:
    """One Automation API call; the `pulumi` CLI it starts is a child of this process (same process group)."""
    stack = _stack(cfg, found)
    program = _inline_program(cfg, _installed_outputs(stack)) if operation != "destroy" else None
    if operation == "preview":
        preview = stack.preview(on_output=on_output, color="never", diff=False, program=program)
        return StackSummary("preview", "succeeded", dict(preview.change_summary or {}),
                            duration_s=time.monotonic() - started)
    result = (stack.up(on_output=on_output, color="never", program=program) if operation == "up"
              else stack.destroy(on_output=on_output, color="never"))
    summary = result.summary
    return StackSummary(operation, summary.result, dict(summary.resource_changes or {}),
                        _public_outputs(getattr(result, "outputs", None)), time.monotonic() - started)


def _tail(exc: Exception, lines: int = 15) -> str:
    text = re.sub(r"\s+\n", "\n", str(exc)).strip()
    return "\n".join(text.splitlines()[-lines:])


def up(cfg: ClusterConfig, on_output: OnOutput | None = None) -> StackSummary:
    """Create or update the platform (`kfinstall up --only platform`)."""
    return _run(cfg, "up", on_output)


def preview(cfg: ClusterConfig, on_output: OnOutput | None = None) -> StackSummary:
    """What `up` would change (`kfinstall plan` when the CLI is present)."""
    return _run(cfg, "preview", on_output)


def destroy(cfg: ClusterConfig, on_output: OnOutput | None = None) -> StackSummary:
    """Remove everything the platform stack created (`kfinstall down`)."""
    return _run(cfg, "destroy", on_output)


PASSPHRASE_TIMEOUT_S = 600  # the CLI rewrites the whole checkpoint: proportional to the stack's size


def change_passphrase_argv(cfg: ClusterConfig, found: Preflight) -> list[str]:
    """The CLI call that re-encrypts the stack's config and checkpoint with a new passphrase.

    The Python Automation API has no call for it (pulumi 3.272's Stack has no change_secrets_provider),
    so the CLI runs as the Automation API would. Upstream (pulumi/pulumi
    pkg/cmd/pulumi/stack/stack_change_secrets_provider.go): changing to `passphrase` when the stack already
    uses it is a rotation; pkg/secrets/passphrase/manager.go: the old passphrase comes from
    PULUMI_CONFIG_PASSPHRASE, and a rotation run non-interactively reads the new one from the first
    line of stdin (never argv, never the environment of other children).
    """
    work = cfg.state_dir / "pulumi-work"
    return [found.cli, "stack", "change-secrets-provider", "passphrase", "--stack", cfg.name,
            "--cwd", str(work), "--non-interactive", "--color", "never"]


def change_passphrase(cfg: ClusterConfig, old: str, new: str) -> None:
    """Re-encrypt the stack with `new`. A stack already re-encrypted by an earlier run whose secrets.yml
    was not updated (the old passphrase is then refused) is re-encrypted with `new` again, harmlessly,
    which proves `new` opens it. PhaseFailed names the CLI's last lines (they never hold a passphrase)."""
    found = preflight(cfg, kubeconfig=False)
    _stack(cfg, found)  # writes the project file and selects the stack in the work dir, as `up` does
    argv = change_passphrase_argv(cfg, found)
    base = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_CONFIG_PASSPHRASE")}
    base.update({**engine_env(cfg), "PULUMI_HOME": str(found.pulumi_home)})
    done = None
    for current in (old, new):
        done = run_child(argv, timeout=PASSPHRASE_TIMEOUT_S, input=new + "\n",
                         env={**base, "PULUMI_CONFIG_PASSPHRASE": current})
        if done.returncode == 0:
            return
        if "incorrect passphrase" not in (done.stdout + done.stderr).lower():
            break
    assert done is not None
    tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
    raise PhaseFailed(f"pulumi stack change-secrets-provider failed (exit {done.returncode}): {tail}")
