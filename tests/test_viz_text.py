"""User text in the DOT (names, scopes, titles) can neither break nor steer Graphviz; options are checked."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from viz_graphs import SVG, XLINK, needs_dot, node_line

import tape
from tape import viz

AWKWARD = {  # a name, and how it is drawn: repr's spelling of control characters, ∖ for a backslash
    "nul\x00bell\x07": "nul∖x00bell∖x07",
    "line\nbreak\r\ttab": "line∖nbreak∖r∖ttab",
    "del\x7fc1\x85": "del∖x7fc1∖x85",
    "node\\N graph\\G label\\L": "node∖N graph∖G label∖L",
    'amp&amp;lt<gt>quote"': 'amp&amp;lt<gt>quote"',
    "surrogate\ud800": "surrogate∖ud800",
}


def awkward_graph() -> tuple[tape.Tensor, dict]:
    """A graph whose tensor names, scope and title hold every kind of awkward text."""
    first, *others = AWKWARD
    h = tape.tensor(np.ones(3), requires_grad=True)
    tensors = {first: h}
    with tape.scope("scope\\N\x00/inner\\G"):
        for name in others:
            h = h * 2.0
            tensors[name] = h
    return h.sum(), tensors


def test_the_dot_holds_no_control_characters_and_no_backslash_escapes():
    loss, names = awkward_graph()
    dot = viz.to_dot(loss, names=names, title="title\\N\x00\nsecond line")
    assert "\\N" not in dot and "\\G" not in dot and "\\L" not in dot
    assert not [c for c in dot if ord(c) < 0x20 and c != "\n"]
    dot.encode("utf-8")  # no lone surrogates
    assert "<B>node∖N graph∖G label∖L</B>" in dot
    assert "<B>amp&amp;amp;lt&lt;gt&gt;quote&quot;</B>" in dot  # HTML label: escaped for HTML
    assert 'tooltip="amp&amp;amp;lt<gt>quote\\": ' in dot  # quoted string: & as an entity, " escaped
    assert 'label="title∖N∖x00\\nsecond line"' in dot  # the title's own line break is kept


@needs_dot
def test_graphviz_draws_awkward_names_as_they_are(tmp_path):
    loss, names = awkward_graph()
    path = viz.render(loss, tmp_path / "graph.svg", names=names, title="title \\N\x00")
    root = ET.parse(path).getroot()
    texts = {t.text for t in root.iter(f"{SVG}text")}
    assert set(AWKWARD.values()) <= texts  # each name, every character visible, none expanded
    assert {"scope∖N∖x00", "inner∖G", "title ∖N∖x00"} <= texts
    tooltips = [a.get(f"{XLINK}title") or "" for a in root.iter(f"{SVG}a")]
    for name in AWKWARD.values():
        assert any(t.startswith(f"{name}: float") for t in tooltips), name


@pytest.mark.parametrize("rankdir", ["TB", "LR", "BT", "RL"])
def test_rankdir_is_one_of_graphvizs_four(rankdir):
    x = tape.tensor([1.0], requires_grad=True)
    assert f"graph [rankdir={rankdir} " in viz.to_dot(x * 2, rankdir=rankdir)


@pytest.mark.parametrize("rankdir", ['TB]\n  injected [label="x"]; graph [rankdir=LR', "lr", "", "TB "])
def test_any_other_rankdir_is_refused(rankdir, tmp_path):
    x = tape.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"rankdir must be one of TB, LR, BT, RL, got"):
        viz.to_dot(x * 2, rankdir=rankdir)
    with pytest.raises(ValueError, match="rankdir"):
        viz.render(x * 2, tmp_path / "graph.svg", rankdir=rankdir)
    assert not list(tmp_path.iterdir())  # refused before anything is written


def test_other_options_are_checked():
    x = tape.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="digits must be an int from 1 to 17"):
        viz.to_dot(x * 2, digits=0)
    with pytest.raises(ValueError, match="collapse_modules: a depth must be 1 or more"):
        viz.to_dot(x * 2, collapse_modules=-1)
    with pytest.raises(TypeError, match="root must be a tensor or a sequence of tensors"):
        viz.to_dot(np.ones(2))


def test_a_name_is_shown_with_its_awkward_characters_in_the_tooltip_too():
    loss, names = awkward_graph()
    dot = viz.to_dot(loss, names=names)
    line = node_line(dot, "nul∖x00bell∖x07")
    assert 'tooltip="nul∖x00bell∖x07: float64 (3,) (parameter)' in line
