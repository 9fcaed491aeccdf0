"""Every validation rule with its exact message: bad input is refused before any host is touched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from installer.cli import cli, main
from installer.config.load import load
from installer.config.problems import InvalidConfig




def problems_of(site: Path, sets: tuple[str, ...] = (), need_secrets: bool = True) -> list[str]:
    with pytest.raises(InvalidConfig) as caught:
        load(site, sets, need_secrets=need_secrets)
    return caught.value.lines()


def assert_problem(lines: list[str], expected: str) -> None:
    assert expected in lines, "expected line not found; got:\n" + "\n".join(lines)


GPU_HOSTS = {"all.children.gpu": {"hosts": {"n1": None, "cp1": None}}}

# (id, cluster changes, hosts changes, sets, expected exact line)
CASES = [
    ("unknown-key-did-you-mean", {"spec.gpu.driverBrach": "580"}, {}, (),
     "error: kfinstall.yaml:21:5: spec.gpu.driverBrach: unknown key 'driverBrach'. Fix: did you mean 'driverBranch'?"),
    ("unknown-top-key", {"spek": {}}, {}, (),
     "error: kfinstall.yaml:20:1: spek: unknown key 'spek'. Fix: did you mean 'spec'?"),
    ("unknown-key-no-close-match", {"spec.storage.zzz": 1}, {}, (),
     "error: kfinstall.yaml:21:5: spec.storage.zzz: unknown key 'zzz'. Fix: remove it; allowed keys here: defaultClass, nfs, gluster"),
    ("wrong-type-bool", {"spec.gpu.enabled": "maybe"}, {}, (),
     "error: kfinstall.yaml:21:5: spec.gpu.enabled: Input should be a valid boolean, unable to interpret input (got 'maybe'). Fix: correct spec.gpu.enabled"),
    ("wrong-type-int", {"spec.gpu.timeSlicingReplicas": "many"}, {}, (),
     "error: kfinstall.yaml:21:5: spec.gpu.timeSlicingReplicas: Input should be a valid integer, unable to parse string as an integer (got 'many'). Fix: correct spec.gpu.timeSlicingReplicas"),
    ("int-out-of-range", {"spec.gpu.timeSlicingReplicas": 0}, {}, (),
     'error: kfinstall.yaml:21:5: spec.gpu.timeSlicingReplicas: Input should be greater than or equal to 1 (got 0). Fix: correct spec.gpu.timeSlicingReplicas'),
    ("wrong-type-list", {"spec.auth.admins": "alice"}, {}, (),
     "error: kfinstall.yaml:14:5: spec.auth.admins: Input should be a valid list (got 'alice'). Fix: correct spec.auth.admins"),
    ("literal-choice", {"spec.auth.type": "oauth"}, {}, (),
     "error: kfinstall.yaml:9:5: spec.auth.type: 'oauth' is not allowed. Fix: use one of 'ldap' or 'dummy'"),
    ("channel-as-float", {"spec.channel": 1.1}, {}, (),
     'error: kfinstall.yaml:7:3: spec.channel: YAML read the number 1.1 from 1.1 (unquoted), not the text \'1.1\'. Fix: quote it: channel: "1.1"'),
    ("ldap-url-required", {"spec.auth.ldap.url": ...}, {}, (),
     'error: kfinstall.yaml:10:5: spec.auth.ldap.url: required when spec.auth.type is ldap. Fix: set spec.auth.ldap.url, e.g. ldaps://ldap.example.com:636'),
    ("ldap-bind-dn-required", {"spec.auth.ldap.bindDn": ...}, {}, (),
     'error: kfinstall.yaml:10:5: spec.auth.ldap.bindDn: required when spec.auth.type is ldap. Fix: set spec.auth.ldap.bindDn, e.g. cn=jupyterhub,ou=services,dc=example,dc=com'),
    ("ldap-search-base-required", {"spec.auth.ldap.userSearchBase": ...}, {}, (),
     'error: kfinstall.yaml:10:5: spec.auth.ldap.userSearchBase: required when spec.auth.type is ldap. Fix: set spec.auth.ldap.userSearchBase, e.g. ou=people,dc=example,dc=com'),
    ("ldap-bad-url", {"spec.auth.ldap.url": "http://ldap"}, {}, (),
     "error: kfinstall.yaml:11:7: spec.auth.ldap.url: must start with ldap:// or ldaps:// followed by a host (got 'http://ldap'). Fix: correct spec.auth.ldap.url"),
    ("dummy-outside-lab", {"spec.auth.type": "dummy"}, {}, (),
     'error: kfinstall.yaml:9:5: spec.auth.type: the dummy authenticator is only allowed in the lab profile. Fix: use spec.auth.type: ldap with spec.auth.ldap settings'),
    ("unknown-channel", {"spec.channel": "1.12"}, {}, (),
     "error: kfinstall.yaml:7:3: spec.channel: unknown channel '1.12'. Fix: did you mean '1.11'? channels: 1.9, 1.10, 1.11, 26.03, 26.03.1"),
    ("unknown-profile", {"spec.profile": "baremetal"}, {}, (),
     "error: kfinstall.yaml:6:3: spec.profile: unknown profile 'baremetal'. Fix: did you mean 'bare-metal'? profiles: bare-metal, gcp, lab, private-cloud, private-gpu"),
    ("k8s-version-above-range", {"spec.kubernetes": {"version": "1.36"}}, {}, (),
     "error: kfinstall.yaml:21:5: spec.kubernetes.version: 1.36 is outside channel 26.03's range 1.34-1.35. Fix: use a version from 1.34 to 1.35, or another channel (kfinstall channels)"),
    ("k8s-version-below-range", {"spec.kubernetes": {"version": "1.29.4"}}, {}, (),
     "error: kfinstall.yaml:21:5: spec.kubernetes.version: 1.29.4 is outside channel 26.03's range 1.34-1.35. Fix: use a version from 1.34 to 1.35, or another channel (kfinstall channels)"),
    ("k8s-version-not-a-version", {"spec.kubernetes": {"version": "latest"}}, {}, (),
     "error: kfinstall.yaml:21:5: spec.kubernetes.version: 'latest' is not a version. Fix: write a minor such as 1.34"),
    ("bad-pod-cidr", {"spec.kubernetes": {"podSubnet": "10.244.0.0/33"}}, {}, (),
     "error: kfinstall.yaml:21:5: spec.kubernetes.podSubnet: '10.244.0.0/33' does not appear to be an IPv4 or IPv6 network. Fix: correct spec.kubernetes.podSubnet"),
    ("removed-key-renamed", {"spec.gpu.driverVersion": "550.1"}, {}, (),
     'error: kfinstall.yaml:21:5: spec.gpu.driverVersion: was removed in kfinstall 0.1.0 (drivers are pinned by branch; the channel picks the patch). Fix: rename it to spec.gpu.driverBranch'),
    ("removed-key-dropped", {"spec.storage.heketi": {"url": "http://heketi"}}, {}, (),
     'error: kfinstall.yaml:21:5: spec.storage.heketi: was removed in kfinstall 0.1.0 (Heketi is archived upstream; spec.storage.gluster builds the volume with Ansible). Fix: delete the key'),
    ("wrong-api-version", {"apiVersion": "kfinstall.io/v1"}, {}, (),
     "error: kfinstall.yaml:1:1: apiVersion: 'kfinstall.io/v1' is not allowed. Fix: use one of 'kfinstall.io/v1alpha1'"),
    ("wrong-kind", {"kind": "Install"}, {}, (),
     "error: kfinstall.yaml:2:1: kind: 'Install' is not allowed. Fix: use one of 'Cluster'"),
    ("missing-metadata-name", {"metadata": {}}, {}, (),
     "error: kfinstall.yaml:3:1: metadata.name: required key is missing. Fix: add metadata.name (see the sample inventories)"),
    ("bad-cluster-name", {"metadata.name": "My_Cluster"}, {}, (),
     "error: kfinstall.yaml:4:3: metadata.name: must be a DNS label: lowercase letters, digits and '-', at most 63 characters (got 'My_Cluster'). Fix: correct metadata.name"),
    ("missing-channel", {"spec.channel": ...}, {}, (),
     "error: kfinstall.yaml:5:1: spec.channel: required key is missing. Fix: add spec.channel (see the sample inventories)"),
    ("metallb-without-addresses", {"spec.networking.metallb.addresses": []}, {}, (),
     'error: kfinstall.yaml:16:7: spec.networking.metallb.addresses: required when MetalLB is enabled. Fix: list free addresses on the node network, e.g. [192.0.2.240/28]'),
    ("metallb-bad-address", {"spec.networking.metallb.addresses": ["192.0.2.999/28"]}, {}, (),
     "error: kfinstall.yaml:17:9: spec.networking.metallb.addresses[0]: '192.0.2.999/28' does not appear to be an IPv4 or IPv6 network. Fix: correct spec.networking.metallb.addresses[0]"),
    ("mirror-without-url", {"spec.kubernetes": {"packageSource": "mirror"}}, {}, (),
     'error: kfinstall.yaml:20:3: spec.kubernetes.packageMirror: required when spec.kubernetes.packageSource is mirror. Fix: set the base URL of your package mirror, e.g. https://mirror.example.internal/kubernetes'),
    ("default-class-disabled", {"spec.storage": {"defaultClass": "gluster"}}, {}, (),
     'error: kfinstall.yaml:21:5: spec.storage.defaultClass: gluster is not enabled. Fix: enable spec.storage.gluster or choose an enabled backend'),
    ("serving-replicas", {"spec.components": {"serving": {"replicas": 5, "maxReplicas": 2}}}, {}, (),
     'error: kfinstall.yaml:23:7: spec.components.serving.maxReplicas: 2 is below replicas (5). Fix: raise maxReplicas or lower replicas'),
    ("serving-bad-model-name", {"spec.components": {"serving": {"models": [{"name": "Issue_Model"}]}}}, {}, (),
     "error: kfinstall.yaml:23:9: spec.components.serving.models[0].name: must be a DNS label (lowercase letters, digits, '-') (got 'Issue_Model'). Fix: correct spec.components.serving.models[0].name"),
    ("serving-model-path-injects-config", {"spec.components": {"serving": {"models": [
        {"name": "m", "basePath": "/models/m' } config { name: 'x"}]}}}, {}, (),
     """error: kfinstall.yaml:24:9: spec.components.serving.models[0].basePath: must be a path under /models/ (the models volume) of letters, digits, '.', '_', '-' and '/', without '..' (got "/models/m' } config { na..."). Fix: correct spec.components.serving.models[0].basePath"""),
    ("serving-model-path-off-volume", {"spec.components": {"serving": {"models": [
        {"name": "m", "basePath": "/models/../etc"}]}}}, {}, (),
     "error: kfinstall.yaml:24:9: spec.components.serving.models[0].basePath: must be a path under /models/ (the models volume) of letters, digits, '.', '_', '-' and '/', without '..' (got '/models/../etc'). Fix: correct spec.components.serving.models[0].basePath"),
    ("bad-quantity", {"spec.components": {"jupyterhub": {"storageSize": "ten gigs"}}}, {}, (),
     "error: kfinstall.yaml:22:7: spec.components.jupyterhub.storageSize: 'ten gigs' is not a Kubernetes quantity such as 10Gi. Fix: correct spec.components.jupyterhub.storageSize"),
    ("gke-stack-outside-gcp", {"spec.gpu.stack": "gke"}, {}, (),
     'error: kfinstall.yaml:21:5: spec.gpu.stack: gke drivers exist only on the gcp profile. Fix: use gpu-operator or device-plugin'),
    # inventory rules
    ("duplicate-address", {}, {"all.hosts.n2": {"ansible_host": "192.0.2.21"}}, (),
     "error: hosts.yml:8:7: all.hosts.n2.ansible_host: address 192.0.2.21 is also used by host n1. Fix: give every host its own ansible_host address"),
    ("host-in-no-role", {}, {"all.hosts.stray": {"ansible_host": "192.0.2.99"}}, (),
     "error: hosts.yml:9:5: all.hosts.stray: host is in no role group. Fix: add it to one of kube_control_plane, kube_node, gpu, nfs_server, gluster or remove it"),
    ("gpu-not-in-kube-node", {}, GPU_HOSTS, (),
     "error: hosts.yml:23:9: gpu.hosts.cp1: gpu host is not in kube_node. Fix: add cp1 to kube_node as well (GPU hosts run workloads)"),
    ("no-control-plane", {}, {"all.children.kube_control_plane": {"hosts": {}}}, (),
     "error: hosts.yml:10:5: kube_control_plane: no control-plane host. Fix: add one host (or three for HA) to the kube_control_plane group"),
    ("two-nfs-servers", {}, {"all.children.nfs_server": {"hosts": {"cp1": None, "n1": None}}}, (),
     "error: hosts.yml:17:5: nfs_server: 2 hosts in nfs_server (cp1, n1). Fix: keep exactly one NFS server host"),
    ("nfs-enabled-no-server", {}, {"all.children.nfs_server": {"hosts": {}}}, (),
     "error: hosts.yml:17:5: nfs_server: spec.storage.nfs.enabled is true but no host is in nfs_server. Fix: add one host to nfs_server, or set spec.storage.nfs.enabled: false"),
    ("gluster-too-few", {"spec.storage": {"gluster": {"enabled": True}}}, {"all.children.gluster": {"hosts": {"n1": None, "n2": None}}}, (),
     "error: hosts.yml:20:5: gluster: 2 gluster host(s) for replica 3. Fix: add hosts to the gluster group (at least 3) or lower spec.storage.gluster.replica"),
    ("ha-without-endpoint", {}, {"all.hosts.cp2": {"ansible_host": "192.0.2.12"}, "all.hosts.cp3": {"ansible_host": "192.0.2.13"},
                                 "all.children.kube_control_plane": {"hosts": {"cp1": None, "cp2": None, "cp3": None}}}, (),
     'error: kfinstall.yaml:5:1: spec.kubernetes.controlPlaneEndpoint: 3 control-plane hosts need a shared API address (kube-vip). Fix: set a free IP on the node network as spec.kubernetes.controlPlaneEndpoint'),
    ("lab-vm-outside-lab", {}, {"all.children.lab_vm": {"hosts": {"n1": None}}}, (),
     "error: hosts.yml:22:9: lab_vm.hosts.n1: the lab_vm group is only for the lab profile. Fix: move the host to a role group or remove it"),
    # --set
    ("set-unknown-key", {}, {}, ("gpu.enabeld=true",),
     "error: --set: spec.gpu.enabeld: unknown key 'enabeld'. Fix: did you mean 'enabled'?"),
    ("set-without-equals", {}, {}, ("spec.gpu.enabled",),
     "error: --set: spec.gpu.enabled: expected key=value. Fix: write --set spec.section.key=value"),
    ("set-unknown-channel", {}, {}, ("spec.channel=2.0",),
     "error: --set: spec.channel: unknown channel '2.0'. Fix: did you mean '26.03'? channels: 1.9, 1.10, 1.11, 26.03, 26.03.1"),
]


@pytest.mark.parametrize(("cluster", "hosts", "sets", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_reported_exactly(make_site, cluster, hosts, sets, expected) -> None:
    site = make_site(cluster=cluster, hosts=hosts)
    assert_problem(problems_of(site, sets), expected)


GCP_CLUSTER = {"spec.profile": "gcp", "spec.gcp": {"project": "p"}, "spec.networking": {"ingress": {"host": "ml.example.com"}}}


def test_yaml_syntax_error_in_cluster_file_gives_line_and_column(make_site) -> None:
    site = make_site(cluster_text="apiVersion: kfinstall.io/v1alpha1\nkind: Cluster\nmetadata:\n  name: [x\nspec: {}\n")
    lines = problems_of(site)
    assert lines[0].startswith("error: kfinstall.yaml:5:5: YAML syntax error:"), lines


def test_yaml_syntax_error_in_hosts_gives_line_and_column(make_site) -> None:
    site = make_site(hosts_text="all:\n  hosts:\n    cp1: {ansible_host: 192.0.2.11\n  children: {}\n")
    lines = problems_of(site)
    assert any(line.startswith("error: hosts.yml:4:") and "YAML syntax error" in line for line in lines), lines


def test_duplicate_yaml_key_is_an_error(make_site) -> None:
    text = "apiVersion: kfinstall.io/v1alpha1\nkind: Cluster\nkind: Cluster\nmetadata: {name: x}\nspec: {profile: lab, channel: '26.03'}\n"
    lines = problems_of(make_site(cluster_text=text))
    assert any(line.startswith("error: kfinstall.yaml:3:1: YAML syntax error") and "duplicate key" in line for line in lines), lines


def test_cluster_file_that_is_a_list_is_refused(make_site) -> None:
    lines = problems_of(make_site(cluster_text="- a\n- b\n"))
    assert_problem(lines, "error: kfinstall.yaml: expected a mapping with apiVersion, kind, metadata and spec. "
                          "Fix: start from inventories/<profile>/kfinstall.yaml")


def test_unreadable_cluster_file(make_site) -> None:
    site = make_site()
    (site / "kfinstall.yaml").write_bytes(b"\xff\xfe\x00bad")
    lines = problems_of(site)
    assert any(line.startswith("error: kfinstall.yaml: the file is saved as UTF-16; kfinstall reads UTF-8 only")
               for line in lines), lines


def test_cluster_path_that_is_a_directory_is_unreadable(make_site) -> None:
    site = make_site()
    (site / "kfinstall.yaml").unlink()
    (site / "kfinstall.yaml").mkdir()
    lines = problems_of(site)
    assert any(line.startswith("error: kfinstall.yaml: ") and "kfinstall.yaml is a directory, not a regular file" in line
               for line in lines), lines


def test_missing_files_are_named(make_site) -> None:
    site = make_site()
    (site / "kfinstall.yaml").unlink()
    (site / "hosts.yml").unlink()
    lines = problems_of(site)
    assert any(line.startswith("error: kfinstall.yaml: file not found.") for line in lines), lines
    assert any(line.startswith("error: hosts.yml: file not found.") for line in lines), lines


def test_ini_inventory_is_accepted(make_site) -> None:
    ini = ("[kube_control_plane]\ncp1 ansible_host=192.0.2.11\n[kube_node]\nn1 ansible_host=192.0.2.21\n"
           "[nfs_server]\ncp1\n")
    site = make_site(hosts_text=ini, hosts_name="hosts.ini")
    (site / "hosts.yml").unlink(missing_ok=True)
    cfg = load(site)
    assert [h.name for h in cfg.inventory.in_role("kube_node")] == ["n1"]
    assert cfg.inventory.in_role("kube_control_plane")[0].address == "192.0.2.11"


def test_inventory_ansible_cannot_parse(make_site) -> None:
    site = make_site(hosts_text="[kube_node\nn1 ansible_host=1.2.3.4\n", hosts_name="hosts.ini")
    (site / "hosts.yml").unlink(missing_ok=True)
    lines = problems_of(site)
    assert any(line.startswith("error: hosts.ini: Ansible cannot parse the inventory:") for line in lines), lines


def test_gcp_profile_with_hosts_listed(make_site) -> None:
    lines = problems_of(make_site(cluster=GCP_CLUSTER))
    assert_problem(lines, "error: hosts.yml:1:1: all: the gcp profile creates its nodes with GKE, but 3 host(s) are listed. "
                          "Fix: empty hosts.yml (keep `all: {}`) or choose a host-based profile")


def test_gcp_profile_without_hosts_is_valid(make_site) -> None:
    cfg = load(make_site(cluster=GCP_CLUSTER, hosts_text="all: {}\n"))
    assert cfg.inventory.hosts == ()
    assert cfg.profile.host_phase is False


def test_gcp_profile_requires_project(make_site) -> None:
    lines = problems_of(make_site(cluster={**GCP_CLUSTER, "spec.gcp": {}}, hosts_text="all: {}\n"))
    assert_problem(lines, "error: kfinstall.yaml:17:3: spec.gcp.project: required for the gcp profile. Fix: set your GCP project id")


def test_even_number_of_control_plane_hosts_is_refused(make_site) -> None:
    """playbooks/00-validate.yml asserts an odd count: validate refuses it before any host is touched."""
    hosts = {"all.hosts.cp2": {"ansible_host": "192.0.2.12"},
             "all.children.kube_control_plane": {"hosts": {"cp1": None, "cp2": None}}}
    with pytest.raises(InvalidConfig) as caught:
        load(make_site(hosts=hosts), need_secrets=False)
    assert [(p.severity, p.file, p.key, p.message, p.fix) for p in caught.value.problems] == [
        ("error", "hosts.yml", "kube_control_plane", "2 control-plane hosts: etcd needs an odd number for quorum",
         "use 1, 3 or 5 control-plane hosts (add or remove one of cp1, cp2)")]


def test_secrets_with_loose_permissions(make_site) -> None:
    site = make_site()
    (site / "secrets.yml").chmod(0o644)
    assert_problem(problems_of(site), "error: secrets.yml: permissions are 0644; secrets must not be readable by others. "
                                      f"Fix: chmod 600 {site / 'secrets.yml'}")


def test_secrets_missing_generated_key(make_site) -> None:
    site = make_site()
    text = "\n".join(line for line in (site / "secrets.yml").read_text().splitlines() if "grafana" not in line)
    (site / "secrets.yml").write_text(text)
    assert_problem(problems_of(site), "error: secrets.yml: grafana_admin_password: missing or empty. "
                                      "Fix: run `kfinstall init` on the site folder to fill generated secrets")


def test_ldap_bind_password_required_in_secrets(make_site) -> None:
    site = make_site()
    text = (site / "secrets.yml").read_text().replace("bind-password-for-tests", "''")
    (site / "secrets.yml").write_text(text)
    assert_problem(problems_of(site), "error: secrets.yml:7:1: ldap_bind_password: empty, but spec.auth.ldap.bindDn is set "
                                      "(kfinstall.yaml:12). Fix: put the bind DN's password in secrets.yml "
                                      "(ldap_bind_password), or remove spec.auth.ldap.bindDn for anonymous binds")


def test_secret_values_never_appear_in_problems(make_site) -> None:
    site = make_site(cluster={"spec.gpu.enabled": "maybe"})
    (site / "secrets.yml").chmod(0o644)
    secret_values = [line.split(": ", 1)[1] for line in (site / "secrets.yml").read_text().splitlines()
                     if line and not line.startswith("#")]
    output = "\n".join(problems_of(site))
    assert secret_values and not any(value in output for value in secret_values)


def test_every_problem_is_reported_at_once(make_site) -> None:
    site = make_site(cluster={"spec.gpu.driverBrach": "1", "spec.auth.ldap.url": ...},
                     hosts={"all.hosts.stray": {"ansible_host": "192.0.2.99"}})
    (site / "secrets.yml").chmod(0o640)
    lines = problems_of(site)
    keys = {line.split(": ")[2] for line in lines}
    assert {"spec.gpu.driverBrach", "all.hosts.stray"} <= keys, lines
    assert any(line.startswith("error: secrets.yml: permissions") for line in lines)


def test_reported_line_holds_the_key(make_site) -> None:
    """The line:column of each problem points at the key named (or its nearest existing parent)."""
    site = make_site(cluster={"spec.gpu.driverBrach": "580", "spec.storage": {"nfs": {"exportPath": "relative"}}})
    text = (site / "kfinstall.yaml").read_text().splitlines()
    with pytest.raises(InvalidConfig) as caught:
        load(site)
    located = [p for p in caught.value.problems if p.line is not None]
    assert len(located) == 2
    for problem in located:
        leaf = problem.key.split(".")[-1]
        assert text[problem.line - 1][problem.column - 1:].startswith(leaf), (problem, text[problem.line - 1])


def test_base_site_is_valid(make_site) -> None:
    cfg = load(make_site())
    assert cfg.warnings == ()
    assert cfg.kubernetes_version == cfg.release.kubernetes.default_minor


def test_cli_exits_2_with_one_line_per_problem(make_site, capfd) -> None:
    site = make_site(cluster={"spec.gpu.driverBrach": "1", "spec.channel": "9.9"})
    os.environ.pop("KFINSTALL_INVENTORY", None)
    with pytest.raises(SystemExit) as caught:
        sys_argv = ["kfinstall", "inventory", "validate", "-i", str(site)]
        import sys
        old, sys.argv = sys.argv, sys_argv
        try:
            main()
        finally:
            sys.argv = old
    assert caught.value.code == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err[:2] == [
        "error: kfinstall.yaml:7:3: spec.channel: unknown channel '9.9'. Fix: did you mean '1.9'? channels: 1.9, 1.10, 1.11, 26.03, 26.03.1",
        "error: kfinstall.yaml:21:5: spec.gpu.driverBrach: unknown key 'driverBrach'. Fix: did you mean 'driverBranch'?",
    ]
    assert err[-1] == "2 problem(s); nothing was changed."


def test_validate_json_lists_problems(make_site) -> None:
    site = make_site(cluster={"spec.gpu.enabled": "maybe"})
    result = CliRunner().invoke(cli, ["inventory", "validate", "-i", str(site), "--output", "json"])
    import json
    data = json.loads(result.stdout)
    assert data["valid"] is False
    assert data["problems"][0]["key"] == "spec.gpu.enabled"
    assert data["problems"][0]["line"] == 21


def test_loading_leaves_the_ansible_environment_alone(make_site, monkeypatch) -> None:
    """The parse settings must not leak into ansible commands started later by this process."""
    monkeypatch.delenv("ANSIBLE_INVENTORY_ENABLED", raising=False)
    load(make_site())
    assert "ANSIBLE_INVENTORY_ENABLED" not in os.environ


def test_inventory_ansible_cannot_parse_after_ansible_was_imported(make_site) -> None:
    """Ansible reads its settings from the environment once, when ansible.constants is first imported: a
    process that imported it before the first parse (the unit tier does, through a test module) got a
    warning and an empty inventory for an unparsable hosts.ini instead of the error. The parse settings
    are now put on the constants too, for the parse only."""
    import subprocess
    import sys

    site = make_site(hosts_text="[kube_node\nn1 ansible_host=1.2.3.4\n", hosts_name="hosts.ini")
    (site / "hosts.yml").unlink(missing_ok=True)
    script = (
        "import ansible.constants as C\n"
        "from installer.config.load import load\n"
        "from installer.config.problems import InvalidConfig\n"
        "enabled = list(C.INVENTORY_ENABLED)\n"
        f"try:\n    load(__import__('pathlib').Path({str(site)!r}), need_secrets=False)\n"
        "except InvalidConfig as exc:\n    print('\\n'.join(p.render() for p in exc.problems))\n"
        "assert list(C.INVENTORY_ENABLED) == enabled, 'the settings must not outlive the parse'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "hosts.ini: Ansible cannot parse the inventory:" in done.stdout, done.stdout + done.stderr
