"""metrics-server: the argument list the pinned chart renders from kfinstall's values names each flag once.

Helm records only our values here (the chart is never rendered), so the chart's container `args`
are modelled from its deployment template, identical in this part at every pinned tag
(kubernetes-sigs/metrics-server, charts/metrics-server/templates/deployment.yaml at
metrics-server-helm-chart-3.12.1, -3.12.2 and -3.13.0):

    args:
      - --secure-port=<containerPort>
      {{ range .Values.defaultArgs }} - {{ . }}
      {{ if .Values.metrics.enabled }} - --authorization-always-allow-paths=/metrics
      {{ if ne .Values.tls.type "metrics-server" }} - --tls-cert-file=... - --tls-private-key-file=...   (3.13.0 only)
      {{ range .Values.args }} - {{ . }}

`args` therefore comes after `defaultArgs`, which already holds
`--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname` (values.yaml at those tags). That
flag is a pflag StringSliceVar (cmd/metrics-server/app/options/kubelet_client.go at v0.7.1, v0.7.2 and
v0.8.0, the chart's appVersions), and a repeated StringSlice flag appends: overriding it in `args`
gave InternalIP,ExternalIP,Hostname,InternalIP,Hostname. Replacing it means overriding `defaultArgs`
(Helm replaces a list wholesale), so every default flag still wanted must be repeated there.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from stackhelpers import CHANNELS, PROFILES, SHARED_SCHEMAS

from installer.render import plain

# GKE runs its own metrics-server, so kfinstall installs none there (stacks/serving.py).
MATRIX = [(p, c) for p in PROFILES if p != "gcp" for c in CHANNELS]
ADDRESS_TYPES = "--kubelet-preferred-address-types"
OURS = ["InternalIP", "Hostname"]  # every node of a bare-metal cluster has an InternalIP; no ExternalIP


def _merge(base: Any, override: Any) -> Any:
    """Helm's rule: maps merge key by key, everything else (lists too) replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{key: _merge(base.get(key), value) for key, value in override.items()}}
    return override


def chart_args(values: dict[str, Any]) -> list[str]:
    """The container args the deployment template renders from merged values (see the docstring)."""
    args = [f"--secure-port={int(values['containerPort'])}", *values["defaultArgs"]]
    if values["metrics"]["enabled"]:
        args.append("--authorization-always-allow-paths=/metrics")
    if "tls" in values and values["tls"]["type"] != "metrics-server":  # the tls block exists from 3.13.0
        args += ["--tls-cert-file=/tmp/tls-certs/tls.crt", "--tls-private-key-file=/tmp/tls-certs/tls.key"]
    return args + list(values["args"])


def flag_values(args: list[str]) -> dict[str, list[str]]:
    """Each flag with every value it was given, in order (a bare boolean flag counts as "true")."""
    seen: dict[str, list[str]] = {}
    for arg in args:
        name, _, value = arg.partition("=")
        seen.setdefault(name, []).append(value or "true")
    return seen


def _upstream_defaults(version: str) -> dict[str, Any]:
    path = SHARED_SCHEMAS / "metrics-server" / version / "values.yaml"
    if not SHARED_SCHEMAS.is_dir():
        pytest.skip(f"{SHARED_SCHEMAS} is absent: upstream chart defaults are not available on this machine")
    assert path.is_file(), f"no upstream metrics-server defaults for pinned chart {version} at {path}"
    return yaml.safe_load(path.read_text())


@pytest.mark.parametrize(("profile", "channel"), MATRIX)
def test_each_flag_is_rendered_once_with_our_value(renders, profile: str, channel: str) -> None:
    rendered = renders.get(profile, channel)
    release = next(plain(h.inputs) for h in rendered.helm() if plain(h.inputs)["name"] == "metrics-server")
    defaults = _upstream_defaults(release["version"])
    flags = flag_values(chart_args(_merge(defaults, release["values"])))
    repeated = {name: given for name, given in flags.items() if len(given) > 1}
    assert not repeated, f"flags rendered more than once (pflag appends or the last wins): {repeated}"
    assert flags[ADDRESS_TYPES] == [",".join(OURS)]
    kept = {name for name in flag_values(defaults["defaultArgs"])}
    assert kept <= set(flags), f"upstream default flags dropped by our defaultArgs: {sorted(kept - set(flags))}"
    assert flags["--kubelet-insecure-tls"] == ["true"]  # kubeadm kubelets serve self-signed certificates


def test_the_model_repeats_a_flag_set_in_args() -> None:
    """The old values (the flag in `args`) render it twice: the model sees what the defect was."""
    defaults = {"containerPort": 10250, "metrics": {"enabled": False}, "args": [],
                "defaultArgs": ["--cert-dir=/tmp", f"{ADDRESS_TYPES}=InternalIP,ExternalIP,Hostname"]}
    flags = flag_values(chart_args(_merge(defaults, {"args": [f"{ADDRESS_TYPES}=InternalIP,Hostname"]})))
    assert flags[ADDRESS_TYPES] == ["InternalIP,ExternalIP,Hostname", "InternalIP,Hostname"]
    assert flags["--secure-port"] == ["10250"]
