"""The docs' comparison table is the one the backends report (regenerate: jimeng backends)."""

from __future__ import annotations

from pathlib import Path

from jimeng.backends import reference_capabilities
from jimeng.backends._capabilities import comparison_table

DOC = Path(__file__).resolve().parent.parent / "docs" / "backends.md"
START = (
    "<!-- generated from reference_capabilities(): `python -m jimeng backends`; "
    "a test compares -->\n"
)
END = "<!-- end of generated table -->"


def test_docs_table_is_generated_from_the_capability_tables() -> None:
    text = DOC.read_text(encoding="utf-8")
    generated = text.split(START, 1)[1].split(END, 1)[0]
    assert generated == comparison_table(reference_capabilities()), (
        "docs/backends.md is stale: paste the output of `python -m jimeng backends` between the "
        "markers"
    )
