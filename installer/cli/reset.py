"""`kfinstall reset`: return hosts to their state before kfinstall (installer/reset.py)."""

from __future__ import annotations

from pathlib import Path

import click

from installer.cli.common import (
    confirm_on_terminal,
    emit_json,
    failure_document,
    inventory_option,
    output_option,
    profile_option,
    state_dir_option,
    stderr,
    stdout,
    verbosity,
)
from installer.config.load import load
from installer.errors import KfinstallError


@click.command()
@inventory_option
@profile_option
@state_dir_option
@click.option("--limit", "limit", default=None, metavar="PATTERN",
              help="Only these hosts: an Ansible host pattern (h3, 'kube_node:!h1', ...). Default: every host.")
@click.option("--purge-packages", is_flag=True, help="Also purge the packages kfinstall installed (kept by default).")
@click.option("--purge-data", is_flag=True,
              help="Also delete the data directories kfinstall created: the NFS export and the Gluster bricks.")
@click.option("--dry-run", is_flag=True,
              help="Show what reset would do on each host and what it refuses; touch nothing.")
@click.option("--yes", is_flag=True, help="Do not ask (required when not on a terminal).")
@output_option
def reset(inventory: Path, profile: str | None, state_dir: Path | None, limit: str | None, purge_packages: bool,
          purge_data: bool, dry_run: bool, yes: bool, output: str) -> None:
    """Return hosts to their state before kfinstall.

    Services kfinstall installed are stopped and disabled, its files removed (or what they replaced put
    back) and its mounts, exports and Kubernetes membership (kubeadm reset, CNI and iptables state) undone.
    Packages and data stay unless --purge-packages / --purge-data. Shown first and asked; what would break
    the hosts that stay (a control plane, the NFS server, Gluster quorum) is refused (exit 3).
    """
    from installer.reset import check_plan, plan_reset, run_reset

    cfg = load(inventory, need_secrets=False, state_dir=state_dir, profile=profile)
    plan = plan_reset(cfg, limit, purge_packages=purge_packages, purge_data=purge_data)
    if dry_run or not plan.hosts:  # nothing to do (every chosen host already reset): shown, exit 0
        if output == "json":
            emit_json({**plan.as_dict(), "dryRun": dry_run, "result": "refused" if plan.refusals else "ok"})
        else:
            for line in plan.lines():
                stdout.print(line, markup=False, highlight=False)
        check_plan(plan)  # exit 3 when refused, after showing the plan
        return
    progress = stderr if output == "json" else stdout
    if output != "json" and yes:
        for line in plan.lines():
            progress.print(line, markup=False, highlight=False)
    try:
        report = run_reset(cfg, plan, progress, verbosity=verbosity(), confirm=None if yes else confirm_on_terminal)
    except KfinstallError as exc:
        if output == "json":
            document = failure_document(exc, exc.exit_code)
            emit_json({"plan": plan.as_dict(), **document} if exc.report is None else document)
        raise
    if output == "json":
        emit_json(report.as_dict())
        return
    for line in report.lines():
        stdout.print(line, markup=False, highlight=False)
