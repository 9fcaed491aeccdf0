"""Off a terminal `up` asks nothing and the answer is no; the refusal must say why and what to do
(--yes), and show the question's plan summary, instead of a bare 'not confirmed'."""

from __future__ import annotations

from typing import Any


def test_up_off_a_terminal_says_to_pass_yes_and_shows_the_plan(make_site: Any, kfinstall_streams: Any,
                                                                 tmp_path: Any) -> None:
    site = make_site()
    code, out, err = kfinstall_streams("up", "-i", str(site), "--state-dir", str(tmp_path / "state"))
    assert code == 3
    assert "not confirmed; nothing was changed" in err
    assert "re-run with --yes" in err
    assert "Plan for cluster" in err
    assert not (tmp_path / "state" / "runs").exists()  # nothing ran
