"""Every value kfinstall hands to Ansible arrives as data, never as a template.

A Jinja payload goes into every free-text field of kfinstall.yaml through --set (the fields are
enumerated from the model, so a new field is covered without editing this test). Each field either
refuses it (exit 2 naming the field) or accepts it; the extra vars built from all accepted payloads
then go through the real adapter (run_playbook) into a real ansible-playbook run on localhost that
reads every kf_* variable the way roles do. No payload may run, and every value must arrive as written.
"""

from __future__ import annotations

import json
import sys
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from installer.adapters.ansible import EXTRA_VARS_PREFIX, run_playbook, unsafe_vars_yaml, write_unsafe_vars
from installer.adapters.ssh import HostKeyPolicy
from installer.config.load import load
from installer.config.model import ClusterFile
from installer.config.problems import InvalidConfig

PLAYBOOK = """\
- name: Read every kf_* extra var the way roles do
  hosts: all
  gather_facts: false
  vars:
    derived: "{{ query('varnames', '^kf_') }}"
  tasks:
    - name: Template each value (lookup('vars') renders a variable, as a role default referring to it does)
      ansible.builtin.set_fact:
        seen: "{{ dict(derived | zip(query('vars', *derived))) }}"
    - name: Through dict2items and back, as loops over nested values do
      ansible.builtin.set_fact:
        again: "{{ seen | dict2items | items2dict }}"
    - name: Print them
      ansible.builtin.debug:
        msg: "{{ again }}"
    - name: Write what arrived
      ansible.builtin.copy:
        content: "{{ again | to_json }}"
        dest: "{{ out }}"
        mode: "0600"
"""


def payload(canary: Path) -> str:
    return "{{ lookup('pipe', 'touch " + str(canary) + "') }}"


Setter = Callable[[str], Any]


def _unwrap(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _is_str(annotation: Any) -> bool:
    annotation = _unwrap(annotation)
    if annotation is str:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_is_str(arg) for arg in typing.get_args(annotation) if arg is not type(None))
    return False


def _model(annotation: Any) -> type[BaseModel] | None:
    annotation = _unwrap(annotation)
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _item(model: type[BaseModel], key: str, text: str) -> dict[str, Any]:
    """One list item of `model` with `text` in `key` and a plain value in every other required field."""
    item = {f.alias or n: "x" for n, f in model.model_fields.items() if f.is_required()}
    item[key] = text
    return item


def free_text_fields(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, str, Setter]]:
    """(label, --set key, value builder) for every place a string can be written in kfinstall.yaml."""
    for name, field in model.model_fields.items():
        key = f"{prefix}.{field.alias or name}".lstrip(".")
        annotation = _unwrap(field.annotation)
        origin = typing.get_origin(annotation)
        if typing.get_origin(annotation) is typing.Literal:
            continue
        if _is_str(annotation):
            yield key, key, lambda text: text
        elif origin is list and _is_str(typing.get_args(annotation)[0]):
            yield f"{key}[0]", key, lambda text: [text]
        elif origin is list and _model(typing.get_args(annotation)[0]) is not None:
            item = _model(typing.get_args(annotation)[0])
            assert item is not None
            for sub, sub_field in item.model_fields.items():
                sub_key = sub_field.alias or sub
                if _is_str(sub_field.annotation):
                    yield (f"{key}[0].{sub_key}", key,
                           lambda text, item=item, sub_key=sub_key: [_item(item, sub_key, text)])
        elif origin is dict:
            yield f"{key}{{}}", key, lambda text: {text: text, "nested": {"list": [text]}}
        elif _model(annotation) is not None:
            sub_model = _model(annotation)
            assert sub_model is not None
            yield from free_text_fields(sub_model, key)


FIELDS = list(free_text_fields(ClusterFile, ""))


def set_arg(key: str, value: Any) -> str:
    return f"{key}={value if isinstance(value, str) else json.dumps(value)}"


def test_the_enumeration_finds_the_fields_it_must() -> None:
    labels = {label for label, _, _ in FIELDS}
    assert {"metadata.name", "spec.kubernetes.controlPlaneEndpoint", "spec.storage.nfs.exportOptions",
            "spec.auth.ldap.bindDn", "spec.auth.admins[0]", "spec.components.jupyterhub.values{}",
            "spec.components.serving.models[0].basePath", "spec.gcp.project"} <= labels
    assert len(FIELDS) >= 30


def test_every_free_text_field_reaches_ansible_as_data(make_site, tmp_path: Path) -> None:
    site = make_site()
    canaries = tmp_path / "canaries"
    canaries.mkdir()
    accepted: list[str] = []
    for index, (label, key, build) in enumerate(FIELDS):
        # The bare payload, and shapes that pass a format check: an absolute path, a word prefix.
        for shape, text in enumerate(("{}", "/srv/{}", "kf{}")):
            argument = set_arg(key, build(text.format(payload(canaries / f"field-{index}-{shape}"))))
            try:
                load(site, (argument,))
            except InvalidConfig as refused:
                # Refused is fine, as long as the operator is told which field, and that it came from --set.
                assert any(p.file == "--set" and p.key.startswith(key) for p in refused.problems), (
                    label, refused.lines())
            else:
                accepted.append(argument)
                break
    cfg = load(site, tuple(accepted))
    extravars = cfg.ansible_vars()
    # Whatever validation lets through today (e.g. spec.gpu.driverBranch), every extra var must be
    # safe as a class: beside the real ones, a copy of each with a payload in every string, list
    # item and mapping key, as if a future field or rule let one through.
    extravars |= {f"kf_poisoned_{name[3:]}": poisoned(value, canaries / f"var-{name}")
                  for name, value in extravars.items()}
    assert sum("lookup('pipe'" in json.dumps(v) for v in extravars.values()) >= len(extravars) // 2

    arrived = run_locally(extravars, tmp_path)

    assert sorted(p.name for p in canaries.iterdir()) == [], "a payload ran on the controller"
    assert {k: arrived[k] for k in extravars} == json.loads(json.dumps(extravars))


def poisoned(value: Any, canary: Path) -> Any:
    text = payload(canary)
    if isinstance(value, list):
        return [text, *value]
    if isinstance(value, dict):
        return {text: text, **value}
    return text


def run_locally(extravars: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """The real adapter and a real ansible-playbook against localhost (local connection, no SSH)."""
    playbook = tmp_path / "read-vars.yml"
    playbook.write_text(PLAYBOOK)
    inventory = tmp_path / "local.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    out = tmp_path / "arrived.json"
    work = tmp_path / "ansible"
    # A local connection: no ssh, so the strictest host-key policy costs nothing here.
    keys = HostKeyPolicy("strict", tmp_path / "known_hosts")
    result = run_playbook(str(playbook), inventory, {**extravars, "out": str(out)}, work, host_keys=keys)
    assert result.ok, (result.status, result.failures)
    assert not list(work.glob(EXTRA_VARS_PREFIX + "*")), "the extra vars file outlived the run"
    arrived: dict[str, Any] = json.loads(out.read_text())
    return arrived


def test_the_issue_example_is_refused(make_site, tmp_path: Path) -> None:
    """Refused by validation; had it been accepted, the test above shows Ansible would not run it
    (kf_poisoned_control_plane_endpoint carries the same payload)."""
    with pytest.raises(InvalidConfig) as refused:
        load(make_site(), (f"spec.kubernetes.controlPlaneEndpoint={payload(tmp_path / 'x')}",))
    assert [p.key for p in refused.value.problems if p.file == "--set"] == ["spec.kubernetes.controlPlaneEndpoint"]


def test_vars_file_tags_every_string_and_keeps_types(tmp_path: Path) -> None:
    import yaml
    from ansible.parsing.yaml.loader import AnsibleLoader

    # Strings that plain YAML reads as other types: ansible-core 2.19 resolves `!unsafe` scalars as if
    # unquoted, so `!unsafe '1.10'` would arrive as the float 1.1 (channel 1.10, Kubernetes 1.30).
    lookalikes = ["1.10", "26.03", "1.30", "yes", "off", "null", "~", "", "0o10", "0x1F", "12", "1e3", ".inf",
                  "2026-03-01", "190:20:30"]
    values = {"kf_a": "{{ x }}\nline: {% y %}", "kf_b": ["'q'", '"dq"', "\\", "é\u2028\x07"],
              "kf_c": {"k{{": {"n": [1, True, None, 2.5, ""]}}, "kf_d": "", "kf_e": " # lead",
              "kf_f": lookalikes, "kf_g": dict.fromkeys(lookalikes, "1.10"), "kf_h": "1.10"}
    text = unsafe_vars_yaml(values)
    loaded = yaml.load(text, Loader=AnsibleLoader)
    assert loaded == values
    assert all(isinstance(x, str) for x in (*loaded["kf_f"], *loaded["kf_g"], *loaded["kf_g"].values(), loaded["kf_h"]))
    untagged = [node.value for node in _scalars(yaml.compose(text, Loader=yaml.SafeLoader))
                if node.tag != "!unsafe" and node.style in ("'", '"')]
    # Left untagged only what plain YAML would not read as text, which holds no template syntax.
    resolver = yaml.SafeLoader("")
    assert {v for v in untagged if resolver.resolve(yaml.ScalarNode, v, (True, False)).endswith(":str")} == set()
    assert {"1.10", "yes", "", "null"} <= set(untagged)
    path = write_unsafe_vars(tmp_path, values)
    assert path.parent == tmp_path and path.stat().st_mode & 0o777 == 0o600


def _scalars(node: Any) -> Iterator[Any]:
    import yaml

    if isinstance(node, yaml.ScalarNode):
        yield node
    elif isinstance(node, yaml.SequenceNode):
        for child in node.value:
            yield from _scalars(child)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _scalars(key)
            yield from _scalars(value)


@pytest.mark.parametrize("name", ["kf x", "{{ x }}", "-e", ""])
def test_vars_file_refuses_names_that_are_not_variables(name: str) -> None:
    with pytest.raises(ValueError, match="not an Ansible variable name"):
        unsafe_vars_yaml({name: "v"})


def test_only_the_adapter_starts_ansible() -> None:
    """Every playbook run goes through run_playbook, so every extra var goes through the vars file."""
    import re

    installer = Path(__file__).resolve().parents[2] / "installer"
    starts = re.compile(r"^\s*(import ansible_runner|from ansible_runner)|ansible-playbook\"|\"ansible-playbook", re.M)
    found = sorted(str(p.relative_to(installer)) for p in installer.rglob("*.py") if starts.search(p.read_text()))
    assert found == ["adapters/ansible.py"], found
