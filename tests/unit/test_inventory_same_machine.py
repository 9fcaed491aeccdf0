"""One machine under two inventory names is refused however its address is spelled (review4).

kfinstall keeps what it did per host NAME (state.json's converged hosts, reset's refusals, node remove), but
undoes it per MACHINE (the record on the host): a worker alias of a control plane would pass reset --limit
with a warning and kubeadm reset the control plane. The exact-text check missed an IPv6 address written
another way and an explicit ansible_port 22 beside the default port."""

from __future__ import annotations

from typing import Any

import pytest

from installer.config.load import load
from installer.config.problems import InvalidConfig


@pytest.mark.parametrize(("n1", "n2"), [
    ({"ansible_host": "2001:db8::21"}, {"ansible_host": "2001:DB8:0:0::21"}),
    ({"ansible_host": "192.0.2.21"}, {"ansible_host": "192.0.2.21", "ansible_port": 22}),
])
def test_the_same_machine_under_two_names_is_bad_input(make_site: Any, n1: dict[str, Any], n2: dict[str, Any]) -> None:
    site = make_site(hosts={"all.hosts.n1": n1, "all.hosts.n2": n2})
    with pytest.raises(InvalidConfig) as refused:
        load(site, need_secrets=False)
    text = "\n".join(refused.value.lines())
    assert "all.hosts.n2.ansible_host: address" in text and "is also used by host n1" in text, text


def test_two_ports_of_one_address_stay_two_hosts(make_site: Any) -> None:
    site = make_site(hosts={"all.hosts.n1": {"ansible_host": "192.0.2.21", "ansible_port": 2201},
                            "all.hosts.n2": {"ansible_host": "192.0.2.21", "ansible_port": 2202}})
    assert [h.name for h in load(site, need_secrets=False).inventory.hosts] == ["cp1", "n1", "n2"]
