"""Text made safe for Graphviz: user text (names, scopes, titles) can neither break nor steer it.

Graphviz fails on control characters and NUL, and expands ``\\N``, ``\\G``, ``\\L`` (the node's
name, the graph's, the label) in tooltips and labels even when the backslash is escaped or
written as an entity, so no escaping of a backslash survives every Graphviz version. A
backslash is therefore drawn as the look-alike ∖ (U+2216), and a control character as Python
writes it in a string's repr, with that look-alike: NUL as ∖x00, a newline as ∖n. These
render in every font, where the Unicode control pictures (␀) often do not.
"""

from __future__ import annotations

import html

BACKSLASH = "\u2216"  # ∖, SET MINUS: looks like a backslash, means nothing to Graphviz


def _spelled(code: int) -> str:
    """How ``repr`` spells a character, its backslash replaced: ∖n, ∖x00, ∖ud800."""
    if code == 0x5C:
        return BACKSLASH
    return BACKSLASH + repr(chr(code))[2:-1]


# C0 controls, the backslash, DEL, C1 controls and lone surrogates (which UTF-8 cannot encode)
_UNSAFE = {code: _spelled(code) for code in [*range(0x20), 0x5C, *range(0x7F, 0xA0), *range(0xD800, 0xE000)]}


def printable(text: str) -> str:
    """``text`` with every character Graphviz would choke on or expand replaced by a visible one."""
    return text.translate(_UNSAFE)


def html_text(text: str) -> str:
    """Text for an HTML-like label (``label=<...>``)."""
    return html.escape(printable(text), quote=True)


def quoted(lines: list[str] | str) -> str:
    """A DOT double-quoted string; separate ``lines`` are joined by DOT's centred line break.

    ``&`` is written as an entity because Graphviz decodes entities in plain strings too.
    """
    if isinstance(lines, str):
        lines = [lines]
    body = "\\n".join(printable(line).replace("&", "&amp;").replace('"', '\\"') for line in lines)
    return f'"{body}"'
