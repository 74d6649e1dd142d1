"""docs/vjp.md documents every registered primitive, from the op's own doc line."""

import tape
from tape import docs


def test_every_primitive_has_a_doc_line_with_its_forward_and_its_vjp():
    undocumented = [op.name for op in tape.REGISTRY.values() if ";" not in op.doc]
    assert not undocumented, f"docstrings that do not start 'out = ...; dx = ...': {undocumented}"


def test_the_primitives_table_in_docs_vjp_md_is_current():
    page = docs.PAGE.read_text()
    assert docs.updated(page) == page, "docs/vjp.md is stale: run python -m tape.docs"
    for name in tape.REGISTRY:
        assert f"| `{name}` |" in page
