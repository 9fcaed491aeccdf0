"""Property: whatever an operator's files or --set say, validate and plan exit 0 or 2, print no
traceback and write nothing (issue #11 item 13).

hypothesis mutates the samples `kfinstall init` makes for every profile (inventories/<profile>/ plus
generated secrets): keys deleted, values swapped for other types, random unicode and control
characters, huge numbers, deep nesting, duplicate keys, anchors and aliases, other encodings, random
bytes, and random --set pairs. The CLI's own entry point (installer.cli.main, which maps errors to
exit codes) runs in-process under click's CliRunner isolation: fast, and any exception other than
SystemExit escapes as the traceback an operator would see. A SIGALRM turns a hang into a failure.

Bounded for CI: a fixed number of examples, derandomized (the same examples every run), no example
database. KFINSTALL_FUZZ_EXAMPLES=N raises the count and KFINSTALL_FUZZ_RANDOM=1 draws new examples,
for a longer local hunt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from installer.cli import cli, main

PROFILES = ("bare-metal", "private-cloud", "private-gpu", "gcp", "lab")
FILES = ("kfinstall.yaml", "hosts.yml", "secrets.yml", "group_vars/all.yml")
EXAMPLE_TIMEOUT = 20  # seconds for one command; real ones take well under one
FUZZ = settings(
    max_examples=int(os.environ.get("KFINSTALL_FUZZ_EXAMPLES", "120")),
    derandomize=os.environ.get("KFINSTALL_FUZZ_RANDOM") != "1",
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

# Keys the samples use, so --set paths hit real sections as often as unknown ones.
KNOWN_KEYS = ("spec", "metadata", "name", "profile", "channel", "gpu", "enabled", "storage", "nfs", "gluster",
              "exportPath", "replica", "auth", "type", "ldap", "url", "components", "jupyterhub", "values",
              "kubernetes", "version", "controlPlaneEndpoint", "networking", "metallb", "addresses", "ssh",
              "hostKeyChecking", "timeSlicingReplicas", "serving", "models", "apiVersion", "kind")
YAML_SPECIALS = "&*!|>{}[]:,#%@`'\"-?~\\\t\n\r\x00\x1b\u0085\u2028\ufeff"

scalars = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.sampled_from(YAML_SPECIALS + "ab1 "), max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 65536, 10**30, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.sampled_from(["{{ lookup('pipe', 'id') }}", "1.10", "no", "~", "0x1f", "1e999", "*alias", "&anchor"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One site per profile, as `kfinstall init` writes it (all valid: the fuzz starts from exit 0)."""
    root = tmp_path_factory.mktemp("samples")
    for profile in PROFILES:
        done = CliRunner().invoke(cli, ["init", "--profile", profile, str(root / profile)])
        assert done.exit_code == 0, done.output
    return root


def snapshot(root: Path) -> dict[str, tuple[int, str]]:
    return {
        str(path.relative_to(root)): (path.lstat().st_mode,
                                      hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "")
        for path in sorted(root.rglob("*"))
    }


@contextmanager
def alarm(seconds: int) -> Iterator[None]:
    def hung(signum: int, frame: Any) -> None:
        raise TimeoutError(f"kfinstall did not finish within {seconds} s (a hang)")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(args: list[str]) -> tuple[int, str]:
    """installer.cli.main as the console script runs it: (exit code, stdout + stderr)."""
    runner = CliRunner()
    saved = sys.argv
    with runner.isolation() as streams, alarm(EXAMPLE_TIMEOUT):
        sys.argv = ["kfinstall", *args]
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            sys.argv = saved
        output = b"".join(s.getvalue() for s in streams[:2]).decode(errors="replace")
    return code, output


# --- mutations -----------------------------------------------------------------------------------


def draw_path(data: st.DataObject, tree: Any) -> list[Any]:
    """A random existing path into `tree` (maybe the root)."""
    path: list[Any] = []
    node = tree
    while isinstance(node, dict | list) and node and data.draw(st.integers(0, 3), label="descend") > 0:
        key = data.draw(st.sampled_from(list(node) if isinstance(node, dict) else list(range(len(node)))))
        path.append(key)
        node = node[key]
    return path


def mutate_data(data: st.DataObject, tree: Any) -> Any:
    """One structural change to the parsed file: delete, replace with any value, wrap, nest deep."""
    path = draw_path(data, tree)
    op = data.draw(st.sampled_from(["delete", "set", "wrap", "nest", "rename"]), label="data op")
    if not path:
        return data.draw(values, label="whole document") if op != "wrap" else [tree]
    parent = tree
    for key in path[:-1]:
        parent = parent[key]
    leaf = path[-1]
    if op == "delete":
        del parent[leaf]
    elif op == "set":
        parent[leaf] = data.draw(values, label="value")
    elif op == "wrap":
        parent[leaf] = data.draw(st.sampled_from([[parent[leaf]], {"x": parent[leaf]}, str(parent[leaf])]))
    elif op == "nest":
        value = parent[leaf]
        for _ in range(data.draw(st.integers(1, 120), label="depth")):
            value = [value]
        parent[leaf] = value
    elif isinstance(parent, dict):
        parent[data.draw(st.text(max_size=12), label="new key")] = parent.pop(leaf)
    return tree


def alias_block(width: int, levels: int) -> str:
    lines = [f"b0: &b0 [{','.join(['x'] * width)}]"]
    lines += [f"b{i}: &b{i} [{','.join([f'*b{i - 1}'] * width)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def mutate_text(data: st.DataObject, text: str) -> bytes:
    """One change to the file's text or bytes."""
    op = data.draw(st.sampled_from(["insert", "duplicate-line", "drop-line", "aliases", "truncate", "encoding",
                                    "random-bytes", "deep-flow", "merge-key"]), label="text op")
    at = data.draw(st.integers(0, len(text)), label="offset")
    lines = text.splitlines(keepends=True) or [""]
    line = data.draw(st.integers(0, len(lines) - 1), label="line")
    if op == "insert":
        text = text[:at] + data.draw(st.text(max_size=20) |
                                     st.text(alphabet=st.sampled_from(YAML_SPECIALS + "ab: "), max_size=20)) + text[at:]
    elif op == "duplicate-line":
        text = "".join(lines[: line + 1] + lines[line:])
    elif op == "drop-line":
        text = "".join(lines[:line] + lines[line + 1:])
    elif op == "aliases":
        text += alias_block(data.draw(st.integers(1, 9)), data.draw(st.integers(1, 12)))
    elif op == "truncate":
        text = text[:at]
    elif op == "deep-flow":
        depth = data.draw(st.integers(1, 3000))
        text += "deep: " + "[" * depth + "]" * depth + "\n"
    elif op == "merge-key":
        text += "base: &base {a: 1}\nderived: {<<: *base, b: 2}\n"
    elif op == "encoding":
        encoding = data.draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "latin-1", "utf-8-sig"]))
        return text.encode(encoding, errors="replace")
    elif op == "random-bytes":
        return data.draw(st.binary(max_size=200))
    return text.encode("utf-8", errors="surrogatepass")


def set_pairs() -> st.SearchStrategy[list[str]]:
    segment = st.sampled_from(KNOWN_KEYS) | st.text(max_size=8)
    key = st.lists(segment, min_size=1, max_size=6).map(".".join) | st.text(max_size=30)
    value = st.one_of(st.text(max_size=30), values.map(lambda v: json.dumps(v, default=str)),
                      st.sampled_from(["true", "null", "1.10", "[1,", "{\"a\":", "9" * 5000, "[" * 2000]))
    pair = st.tuples(key, value).map(lambda kv: f"{kv[0]}={kv[1]}") | st.text(max_size=20)
    return st.lists(pair, max_size=3)


# --- the properties ------------------------------------------------------------------------------


def check(site: Path, command: list[str], sets: list[str]) -> None:
    root = site.parent
    before = snapshot(root)
    args = [*command, "-i", str(site)] + [part for expr in sets for part in ("--set", expr)]
    code, output = run_cli(args)
    event(f"exit {code}")  # pytest --hypothesis-show-statistics: how often a mutation still passes
    assert code in (0, 2), f"exit {code}:\n{output[-3000:]}"
    assert "Traceback" not in output, output[-3000:]
    assert snapshot(root) == before, "a file was written, changed or removed"


def fresh_site(samples: Path, tmp: Path, profile: str) -> Path:
    site = tmp / "site"
    shutil.copytree(samples / profile, site)
    return site


COMMANDS = st.sampled_from([["inventory", "validate"], ["plan"], ["plan", "-o", "json"],
                            ["inventory", "validate", "-o", "json"]])


@FUZZ
@given(data=st.data(), profile=st.sampled_from(PROFILES), name=st.sampled_from(FILES), command=COMMANDS,
       textual=st.booleans(), sets=set_pairs())
def test_mutated_site_files_exit_0_or_2_and_write_nothing(
    samples: Path, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, profile: str, name: str,
    command: list[str], textual: bool, sets: list[str],
) -> None:
    site = fresh_site(samples, tmp_path_factory.mktemp("fuzz"), profile)
    path = site / name
    original = path.read_text(encoding="utf-8")
    if textual:
        content = mutate_text(data, original)
    else:
        tree = mutate_data(data, yaml.safe_load(original))
        content = yaml.safe_dump(tree, allow_unicode=data.draw(st.booleans())).encode("utf-8", "surrogatepass")
    path.write_bytes(content)  # keeps the file's mode (secrets.yml stays 0600)
    check(site, command, sets)


@FUZZ
@given(profile=st.sampled_from(PROFILES), command=COMMANDS, sets=set_pairs().filter(bool))
def test_random_set_pairs_exit_0_or_2_and_write_nothing(
    samples: Path, tmp_path_factory: pytest.TempPathFactory, profile: str, command: list[str], sets: list[str],
) -> None:
    check(fresh_site(samples, tmp_path_factory.mktemp("fuzz"), profile), command, sets)
