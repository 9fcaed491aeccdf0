"""`kfinstall verify`: check a running platform; `--demo` also trains and serves the demo model."""

from __future__ import annotations

import threading
from pathlib import Path

import click

from installer.cli.common import emit_json, inventory_option, output_option, profile_option, set_option, stdout
from installer.config.load import load
from installer.errors import PhaseFailed
from installer.interrupt import interrupt_sets
from installer.verify import verify as run_verify


@click.command()
@inventory_option
@profile_option
@set_option
@click.option("--demo", is_flag=True, help="Also run the issue-summarization demo: TFJob, PyTorchJob, a prediction.")
@click.option(
    "--timeout",
    "timeout_s",
    type=click.IntRange(60, 86400),
    default=1800,
    show_default=True,
    help="Seconds to wait for each demo job.",
)
@output_option
def verify(
    inventory: Path, profile: str | None, sets: tuple[str, ...], demo: bool, timeout_s: int, output: str
) -> None:
    """Check the live platform: nodes, GPUs, storage, JupyterHub, serving and GPU metrics.

    Needs kubectl and the site's kubeconfig (STATE/kubeconfig; $KUBECONFIG is not read); without a reachable
    cluster it stops with exit 3 and says what is missing. Any failed check gives exit 4.
    """
    cfg = load(inventory, sets, need_secrets=False, profile=profile)
    # A stop signal ends the kubectl call in flight (and its wait) at once: exit 128 + the signal.
    with interrupt_sets(threading.Event()):
        report = run_verify(cfg, demo=demo, timeout_s=timeout_s)
    if output == "text":
        for check in report.checks:
            stdout.print(f"{check.status:>7}  {check.name}: {check.detail}", markup=False)
    if not report.ok:
        failed = [c.name for c in report.checks if c.status == "failed"]
        error = PhaseFailed(f"verify: {len(failed)} check(s) failed: {', '.join(failed)}")
        error.report = report  # -o json: the checks, then result and error (installer.cli.main)
        raise error
    if output == "json":
        emit_json(report.as_dict())
