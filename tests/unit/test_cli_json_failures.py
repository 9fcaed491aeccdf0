"""`-o json` on failure (issue 13 item 6): every command that takes --output prints one JSON document
on stdout when it fails too, with `result`, `error`, `exitCode` and `problems` (file, line, column, key,
message, fix, severity of each validation problem), and the same exit codes (2/3/4) as in text mode.
Shell completion (item 6): the command README documents prints a completion function.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import pytest

from installer.cli import cli
from installer.errors import PhaseFailed
from installer.releases import channel_names
from installer.up import UpReport
from installer.verify import Check, VerifyReport

REPO = Path(__file__).resolve().parents[2]
Run = Callable[..., tuple[int, str, str]]
PROBLEM_FIELDS = {"file", "line", "column", "key", "message", "fix", "severity"}


def _json_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command (by its words) that takes --output."""
    found = []
    ctx = click.Context(group)
    for name in group.list_commands(ctx):  # click's way to the verbs: installer.cli loads them lazily
        command = group.get_command(ctx, name)
        if isinstance(command, click.Group):
            found += _json_commands(command, (*prefix, name))
        elif any(param.name == "output" for param in command.params):
            found.append((*prefix, name))
    return found


JSON_COMMANDS = _json_commands(cli)

# Words each command needs (besides -i SITE for those that read a site) to get past click to its work.
NEEDS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("render",): ("--out", "{tmp}/out"),
    ("upgrade",): ("--to", channel_names()[-1], "--from", channel_names()[-2], "--dry-run"),
    ("restore",): ("{tmp}",),
    ("profile", "show"): ("lab",),
    ("node", "remove"): ("n1",),
    ("secrets", "rotate"): ("grafana_admin_password",),
}


def _reads_site(words: tuple[str, ...]) -> bool:
    command: Any = cli
    for word in words:
        command = command.get_command(click.Context(command), word)
    return any(param.name == "inventory" for param in command.params)


SITE_COMMANDS = [c for c in JSON_COMMANDS if _reads_site(c) and c != ("restore",)]


def _args(words: tuple[str, ...], tmp: Path, *more: str) -> list[str]:
    return [*words, *(w.replace("{tmp}", str(tmp)) for w in NEEDS.get(words, ())), *more]


def _document(out: str) -> dict[str, Any]:
    """stdout must be exactly one JSON document."""
    document = json.loads(out)
    assert isinstance(document, dict)
    return document


def test_every_json_command_is_covered() -> None:
    assert len(JSON_COMMANDS) >= 13, JSON_COMMANDS  # validate, plan, up, render, verify, status, upgrade, ...
    assert set(SITE_COMMANDS) >= {("inventory", "validate"), ("plan",), ("up",), ("render",), ("verify",)}


@pytest.mark.parametrize("words", SITE_COMMANDS, ids=" ".join)
def test_a_validation_failure_is_a_json_document(
    words: tuple[str, ...], make_site, kfinstall_streams: Run, tmp_path: Path
) -> None:
    site = make_site(cluster={"spec.gpu.enabled": "maybe"})
    code, out, err = kfinstall_streams(*_args(words, tmp_path, "-i", str(site), "-o", "json"))
    assert code == 2, err
    document = _document(out)
    assert document["result"] == "invalid"
    assert document["exitCode"] == 2
    assert document["error"] == "1 problem(s) in the configuration"
    (problem,) = [p for p in document["problems"] if p["severity"] == "error"]
    assert set(problem) >= PROBLEM_FIELDS
    assert (problem["file"], problem["line"], problem["column"], problem["key"]) == (
        "kfinstall.yaml", 21, 5, "spec.gpu.enabled")
    assert problem["fix"] == "correct spec.gpu.enabled"
    assert "spec.gpu.enabled" in err  # the text lines stay on stderr


def test_validate_keeps_its_valid_field(make_site, kfinstall_streams: Run) -> None:
    site = make_site(cluster={"spec.gpu.enabled": "maybe"})
    code, out, _ = kfinstall_streams("inventory", "validate", "-i", str(site), "-o", "json")
    assert code == 2
    document = _document(out)
    assert document["valid"] is False and document["result"] == "invalid"


@pytest.mark.parametrize("words", JSON_COMMANDS, ids=" ".join)
def test_a_usage_error_is_a_json_document(words: tuple[str, ...], kfinstall_streams: Run, tmp_path: Path) -> None:
    """An unknown option stops click before any option is taken: -o json is still honoured."""
    code, out, err = kfinstall_streams(*_args(words, tmp_path, "-o", "json", "--no-such-option"))
    assert code == 2, err
    document = _document(out)
    assert document["error"].startswith("No such option") and "--no-such-option" in document["error"]
    assert (document["result"], document["exitCode"], document["problems"]) == ("invalid", 2, [])


@pytest.mark.parametrize("spelling", [("-o", "json"), ("--output", "json"), ("--output=json",), ("-ojson",)])
def test_a_bad_option_value_is_a_json_document(spelling: tuple[str, ...], make_site, kfinstall_streams: Run) -> None:
    site = make_site()
    code, out, _ = kfinstall_streams("plan", "-i", str(site), "--profile", "no-such-profile", *spelling)
    assert code == 2
    document = _document(out)
    assert document["result"] == "invalid"
    assert document["error"].startswith("Invalid value for '--profile': 'no-such-profile' is not one of")


def test_a_refusal_is_a_json_document_with_exit_3(make_site, kfinstall_streams: Run) -> None:
    site = make_site()
    code, out, _ = kfinstall_streams("down", "-i", str(site), "-o", "json")
    assert code == 3
    document = _document(out)
    assert (document["result"], document["exitCode"], document["problems"]) == ("failed", 3, [])
    assert document["error"].startswith("down deletes the platform's volumes")


def test_restore_of_a_folder_that_is_no_backup_is_a_json_document(
    make_site, kfinstall_streams: Run, tmp_path: Path
) -> None:
    site = make_site()
    empty = tmp_path / "not-a-backup"
    empty.mkdir()
    code, out, _ = kfinstall_streams("restore", str(empty), "-i", str(site), "-o", "json")
    assert code == 3
    assert _document(out)["error"] == f"{empty} is not a kfinstall backup: manifest.json is missing"


def test_failed_verify_checks_are_one_json_document_with_exit_4(
    make_site, kfinstall_streams: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = VerifyReport(checks=[Check("nodes", "ok", "3 Ready"), Check("jupyterhub", "failed", "hub not ready")])
    monkeypatch.setattr("installer.cli.verify.run_verify", lambda cfg, **kwargs: report)
    code, out, _ = kfinstall_streams("verify", "-i", str(make_site()), "-o", "json")
    assert code == 4
    document = _document(out)
    assert document["result"] == "failed" and document["exitCode"] == 4
    assert document["error"] == "verify: 1 check(s) failed: jupyterhub"
    assert document["checks"][1] == {"name": "jupyterhub", "status": "failed", "detail": "hub not ready"}


def test_a_failed_up_is_one_json_document_with_exit_4(
    make_site, kfinstall_streams: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run_up leaves its report on the error: the document holds the phases, then result, error and exitCode."""

    def failing_run(*args: Any, **kwargs: Any) -> None:
        error = PhaseFailed("hosts: task 'install containerd' failed on n1")
        error.report = UpReport(run_id="r1", record="/state/runs/r1", result="failed")
        raise error

    monkeypatch.setattr("installer.cli.up.run_up", failing_run)
    code, out, _ = kfinstall_streams("up", "-i", str(make_site()), "--yes", "-o", "json")
    assert code == 4
    document = _document(out)
    assert (document["runId"], document["phases"], document["result"]) == ("r1", [], "failed")
    assert document["error"] == "hosts: task 'install containerd' failed on n1"
    assert (document["exitCode"], document["problems"]) == (4, [])


def test_text_output_keeps_stdout_empty_on_failure(make_site, kfinstall_streams: Run) -> None:
    site = make_site(cluster={"spec.gpu.enabled": "maybe"})
    code, out, err = kfinstall_streams("plan", "-i", str(site))
    assert code == 2 and out == "" and "spec.gpu.enabled" in err


def test_a_command_without_output_gets_no_json(kfinstall_streams: Run, tmp_path: Path) -> None:
    code, out, err = kfinstall_streams("init", "--profile", "lab", str(tmp_path / "site"), "-o", "json")
    assert code == 2 and out == "" and "No such option" in err


def _entry_point() -> str:
    """The console script pyproject.toml installs (tomllib is Python 3.11+; the project runs on 3.10)."""
    scripts = re.search(r"^\[project\.scripts\]\n(\S+) = ", (REPO / "pyproject.toml").read_text(), re.M)
    assert scripts, "no [project.scripts] in pyproject.toml"
    return scripts.group(1)


def test_readme_documents_shell_completion_for_the_entry_point() -> None:
    name = _entry_point()
    variable = f"_{name.upper().replace('-', '_')}_COMPLETE"
    readme = (REPO / "README.md").read_text()
    for shell in ("bash", "zsh", "fish"):
        assert f"{variable}={shell}_source {name}" in readme, shell


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_completion_source_command_prints_a_function(shell: str) -> None:
    name = _entry_point()
    program = Path(sys.executable).parent / name
    env = {**os.environ, f"_{name.upper()}_COMPLETE": f"{shell}_source"}
    done = subprocess.run([str(program)], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert re.search(rf"_{name}_completion\(\) \{{|function _{name}_completion", done.stdout), done.stdout


def test_completion_completes_verbs_and_profiles() -> None:
    program = Path(sys.executable).parent / _entry_point()

    def complete(words: str) -> list[str]:
        env = {**os.environ, "_KFINSTALL_COMPLETE": "bash_complete", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - 1)}
        done = subprocess.run([str(program)], env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    assert "plain,plan" in complete("kfinstall pl")
    assert {"plain,private-cloud", "plain,private-gpu"} <= set(complete("kfinstall up --profile pri"))
