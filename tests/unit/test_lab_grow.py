"""Adding a host to a running lab (the lab side of issue 15's "adding a worker"): the hosts already running
are kept, not re-created (which wiped what a test had converged on them: their /etc/hosts list differs)."""

from __future__ import annotations

import pytest

from installer.lab import fleet, lifecycle
from installer.lab.settings import LabSettings, host_name

IMAGE = "sha256:0123"


def spec(settings: LabSettings, index: int, hosts: int) -> fleet.HostSpec:
    return lifecycle._host_specs(settings, hosts, 0)[index - 1]


@pytest.fixture
def podman(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(fleet, "run", lambda argv, **kwargs: calls.append(argv))
    return calls


@pytest.mark.parametrize(("before", "after"), [(3, 4), (4, 3), (1, 6)])
def test_a_running_host_is_kept_when_the_lab_grows_or_shrinks(podman, before: int, after: int) -> None:
    settings = LabSettings()
    running = fleet.ContainerState(settings.container_name(host_name(1)), True,
                                   fleet.spec_digest(spec(settings, 1, before), IMAGE))
    wanted = spec(settings, 1, after)
    assert wanted.etc_hosts != spec(settings, 1, before).etc_hosts
    kept = lifecycle._as_in_other_sizes(settings, wanted, IMAGE)
    assert fleet.ensure_host(settings, wanted, running, IMAGE, kept) is False
    assert podman == []


def test_a_host_whose_own_spec_changed_is_still_re_created(podman) -> None:
    settings = LabSettings()
    wanted = spec(settings, 1, 3)
    kept = lifecycle._as_in_other_sizes(settings, wanted, IMAGE)
    for running in (fleet.ContainerState("c", True, fleet.spec_digest(wanted, "sha256:old-image")),
                    fleet.ContainerState("c", False, fleet.spec_digest(wanted, IMAGE))):
        podman.clear()
        assert fleet.ensure_host(settings, wanted, running, IMAGE, kept) is True
        assert podman[0][:3] == ["podman", "rm", "--force"] and podman[1][:2] == ["podman", "run"]
