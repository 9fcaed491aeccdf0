"""`--profile P` (issue 13 item 3) through kfinstall's real entry point, for every verb that reads a site.

--profile sets spec.profile; a site folder without kfinstall.yaml stands for the profile's defaults
(cluster named after the folder); a kfinstall.yaml (or --set) naming another profile is refused with
exit 2 naming both, before anything is read from a host or written.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from installer.config.resolved import ClusterConfig
from installer.config.secrets import generate_secrets
from installer.errors import PreflightError
from installer.releases import channel_names

REPO = Path(__file__).resolve().parents[2]
Run = Callable[..., tuple[int, str, str]]

# Every verb that reads a site folder, with the arguments it needs besides -i and --profile, and its
# exit code on a valid site here: no state, no kubeconfig, no terminal to confirm on, `up` stopped.
SITE_VERBS: list[tuple[tuple[str, ...], int]] = [
    (("inventory", "validate"), 0),
    (("plan",), 0),
    (("up", "--yes"), 3),
    (("render", "--out", "{tmp}/render-out"), 0),
    (("status",), 0),
    (("verify",), 3),
    (("down", "--purge-data"), 3),
    (("backup",), 0),
    (("upgrade", "--to", channel_names()[-1], "--from", channel_names()[-2], "--dry-run"), 0),
]
VERB_IDS = [" ".join(verb[:2]) for verb, _ in SITE_VERBS]


def _argv(verb: tuple[str, ...], tmp: Path, *more: str) -> list[str]:
    return [part.replace("{tmp}", str(tmp)) for part in verb] + list(more)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _hosts_only_site(folder: Path, profile: str = "lab") -> Path:
    """A site folder holding only the profile's sample hosts.yml (no kfinstall.yaml, no secrets.yml)."""
    folder.mkdir(parents=True)
    shutil.copy(REPO / "inventories" / profile / "hosts.yml", folder / "hosts.yml")
    return folder


@pytest.fixture
def stopped_up(monkeypatch: pytest.MonkeyPatch) -> list[ClusterConfig]:
    """`up` stops (exit 3) where it would start the phases; the config it got is kept for the test."""
    seen: list[ClusterConfig] = []

    def stand_in(cfg: ClusterConfig, *args: Any, **kwargs: Any) -> None:
        seen.append(cfg)
        raise PreflightError("stopped by the test before any phase")

    monkeypatch.setattr("installer.cli.up.run_up", stand_in)
    return seen


@pytest.mark.parametrize(("verb", "code_when_valid"), SITE_VERBS, ids=VERB_IDS)
def test_another_profile_than_the_file_names_is_refused_naming_both(
    verb: tuple[str, ...], code_when_valid: int, make_site, kfinstall_streams: Run, tmp_path: Path
) -> None:
    site = make_site()  # kfinstall.yaml says profile bare-metal (line 6, column 3)
    before = _files(site)
    code, _, err = kfinstall_streams(*_argv(verb, tmp_path, "-i", str(site), "--profile", "lab"))
    assert code == 2, err
    assert (
        "error: kfinstall.yaml:6:3: spec.profile: kfinstall.yaml names profile 'bare-metal', but the command "
        "line says --profile lab. Fix: a site has one profile: run with --profile bare-metal, or change "
        "spec.profile to lab in kfinstall.yaml if the site is meant to be lab"
    ) in err.splitlines()
    assert _files(site) == before, "a refused command changed the site folder"
    assert not (tmp_path / "render-out").exists()


@pytest.mark.parametrize(("verb", "code_when_valid"), SITE_VERBS, ids=VERB_IDS)
def test_the_profile_the_file_names_is_accepted(
    verb: tuple[str, ...],
    code_when_valid: int,
    make_site,
    kfinstall_streams: Run,
    tmp_path: Path,
    stopped_up: list[ClusterConfig],
) -> None:
    """--profile equal to the file's: every verb takes it and goes on to its own work (which stops, with
    its own exit 3, where this machine has no cluster or terminal)."""
    site = make_site()
    code, out, err = kfinstall_streams(*_argv(verb, tmp_path, "-i", str(site), "--profile", "bare-metal", "-o", "json"))
    assert code == code_when_valid, err
    assert "spec.profile" not in err
    if code == 0:
        assert json.loads(out)


def test_a_folder_without_kfinstall_yaml_is_the_profiles_defaults(tmp_path: Path, kfinstall_streams: Run) -> None:
    site = _hosts_only_site(tmp_path / "rehearsal-1")
    code, out, err = kfinstall_streams("inventory", "validate", "-i", str(site), "--profile", "lab")
    assert code == 0, err
    assert out.strip() == f"{site}: valid (3 hosts, profile lab, channel {channel_names()[-1]}, 2 warning(s))"
    assert (
        f"warning: kfinstall.yaml: not found: the site is profile lab's defaults on channel {channel_names()[-1]} "
        "(the newest), the cluster named 'rehearsal-1' after its folder. Fix: to pin the channel across kfinstall "
        f"releases, write it in {site}/kfinstall.yaml (`kfinstall init --profile lab {site}` writes a commented one)"
    ) in err.splitlines()

    code, out, err = kfinstall_streams("plan", "-i", str(site), "--profile", "lab", "-o", "json")
    assert code == 0, err
    plan = json.loads(out)
    assert (plan["cluster"], plan["profile"], plan["channel"]) == ("rehearsal-1", "lab", channel_names()[-1])

    code, out, err = kfinstall_streams("status", "-i", str(site), "--profile", "lab", "-o", "json")
    assert code == 0, err
    assert json.loads(out)["stateDir"] == str(site / ".kfinstall" / "rehearsal-1")
    assert _files(site) == ["hosts.yml"], "validate, plan and status wrote into the site"


def test_up_with_profile_on_a_folder_without_kfinstall_yaml(
    tmp_path: Path, kfinstall_streams: Run, stopped_up: list[ClusterConfig]
) -> None:
    site = _hosts_only_site(tmp_path / "lab-site")
    generate_secrets(site / "secrets.yml")
    code, _, err = kfinstall_streams("up", "-i", str(site), "--profile", "lab", "--yes")
    assert code == 3 and "stopped by the test" in err, err
    (cfg,) = stopped_up
    assert (cfg.name, cfg.spec.profile, cfg.release.channel) == ("lab-site", "lab", channel_names()[-1])
    assert cfg.state_dir == site.resolve() / ".kfinstall" / "lab-site"


def test_without_profile_a_folder_without_kfinstall_yaml_is_refused_as_before(
    tmp_path: Path, kfinstall_streams: Run
) -> None:
    site = _hosts_only_site(tmp_path / "site")
    code, _, err = kfinstall_streams("inventory", "validate", "-i", str(site))
    assert code == 2
    assert (
        f"error: kfinstall.yaml: file not found. Fix: create {site}/kfinstall.yaml (kfinstall init --profile P DIR "
        "makes one)"
    ) in err.splitlines()


def test_a_folder_name_that_is_no_cluster_name_is_named_with_the_fix(tmp_path: Path, kfinstall_streams: Run) -> None:
    site = _hosts_only_site(tmp_path / "My Site_2")
    code, _, err = kfinstall_streams("plan", "-i", str(site), "--profile", "lab")
    assert code == 2
    assert (
        f"error: {site}: metadata.name: the folder's name 'My Site_2' is not a valid cluster name (a DNS label: "
        "lowercase letters, digits and '-', at most 63 characters) and there is no kfinstall.yaml to name the "
        f"cluster. Fix: rename the folder (e.g. 'my-site-2'), or pass --set metadata.name=NAME, or write "
        f"{site}/kfinstall.yaml with metadata.name"
    ) in err.splitlines()
    assert "unnamed" not in err  # the stand-in name used to check the rest is never shown

    code, out, err = kfinstall_streams("plan", "-i", str(site), "--profile", "lab", "--set", "metadata.name=my-site",
                                       "-o", "json")
    assert code == 0, err
    assert json.loads(out)["cluster"] == "my-site"


def test_a_profile_set_with_set_and_another_with_profile_is_refused(make_site, kfinstall_streams: Run) -> None:
    site = make_site()
    code, _, err = kfinstall_streams("inventory", "validate", "-i", str(site), "--set", "spec.profile=lab",
                                     "--profile", "private-gpu")
    assert code == 2
    assert any(
        line.startswith("error: --set: spec.profile: --set names profile 'lab', but the command line says "
                        "--profile private-gpu.")
        for line in err.splitlines()
    ), err


def test_profile_fills_a_file_that_leaves_spec_profile_out(make_site, kfinstall_streams: Run) -> None:
    site = make_site(cluster={"spec.profile": ...})
    code, _, err = kfinstall_streams("inventory", "validate", "-i", str(site))
    assert code == 2 and "spec.profile: required key is missing" in err, err
    code, out, err = kfinstall_streams("inventory", "validate", "-i", str(site), "--profile", "bare-metal")
    assert code == 0, err
    assert "profile bare-metal" in out


def test_init_refuses_a_folder_whose_kfinstall_yaml_names_another_profile(
    tmp_path: Path, kfinstall_streams: Run
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "kfinstall.yaml").write_text("apiVersion: kfinstall.io/v1alpha1\nkind: Cluster\nspec:\n  profile: lab\n")
    code, out, err = kfinstall_streams("init", "--profile", "private-gpu", str(site))
    assert code == 2
    assert (
        "error: kfinstall.yaml:4:3: spec.profile: kfinstall.yaml names profile 'lab', but the command line says "
        "--profile private-gpu. Fix: a site has one profile: run with --profile lab, or change spec.profile to "
        "private-gpu in kfinstall.yaml if the site is meant to be private-gpu"
    ) in err.splitlines()
    assert _files(site) == ["kfinstall.yaml"], "a refused init wrote files"
    code, _, err = kfinstall_streams("init", "--profile", "lab", str(site))
    assert code == 0, err


def _fill_bind_password(path: Path) -> None:
    values = yaml.safe_load(path.read_text())
    values["ldap_bind_password"] = "bind-password-for-tests"
    path.write_text(yaml.safe_dump(values))


def _quickstart_commands() -> list[str]:
    """The `kfinstall ...` lines of the README's quickstart block, without their comments."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Quickstart for a real site\n\n```bash\n(.*?)```", text, re.S)
    assert block, "README has no quickstart block"
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.startswith("kfinstall ")]


def test_readme_quickstart_runs_with_up_profile_private_gpu(
    tmp_path: Path, kfinstall_streams: Run, stopped_up: list[ClusterConfig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's quickstart as written (mysite in a temporary folder), `up` stopped before its phases."""
    commands = _quickstart_commands()
    assert any(c.startswith("kfinstall up --profile private-gpu") for c in commands), commands
    monkeypatch.chdir(tmp_path)
    for command in commands:
        if command.startswith("kfinstall inventory validate"):  # the $EDITOR step: the LDAP bind password
            _fill_bind_password(tmp_path / "mysite" / "secrets.yml")
        code, _, err = kfinstall_streams(*shlex.split(command)[1:])
        if command.startswith("kfinstall up"):
            assert code == 3 and "stopped by the test" in err, (command, err)
        else:
            assert code == 0, (command, err)
    (cfg,) = stopped_up
    assert cfg.spec.profile == "private-gpu"


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_a_site_that_is_no_folder_is_one_problem_naming_it(tmp_path, kind: str) -> None:
    """`-i /nonexistent` said "hosts.yml: file not found. Fix: create /nonexistent/hosts.yml" and the same for
    every other file; it is one problem naming the folder and how to make it."""
    from installer.config.load import load
    from installer.config.problems import InvalidConfig

    site = tmp_path / "nowhere"
    if kind == "file":
        site.write_text("not a folder\n")
    with pytest.raises(InvalidConfig) as refused:
        load(site, profile="private-gpu")
    [problem] = refused.value.problems
    assert problem.file == str(site) and "site folder" in problem.message
    assert f"kfinstall init --profile private-gpu {site}" in problem.fix
