"""The README's configuration table names every environment variable the package reads."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: A quoted ``JIMENG_…``/``VOLC_…``/``ARK_…`` literal in the package is a variable it reads
#: (``os.environ.get("…")`` or a small helper given the name).
VARIABLE = re.compile(r"[\"']((?:JIMENG|VOLC|ARK)_[A-Z0-9_]+)[\"']")
#: Quoted names that are not environment variables.
NOT_VARIABLES = {"ARK_PREFIX"}  # the sandbox's exported path prefix


def variables_read() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "jimeng").rglob("*.py"):
        found.update(VARIABLE.findall(path.read_text(encoding="utf-8")))
    return found - NOT_VARIABLES


def configuration_table() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z0-9_]+)`", row.split(" | ")[0])}


def test_the_scan_sees_the_variables_it_should() -> None:
    found = variables_read()
    assert {"VOLC_ACCESSKEY", "JIMENG_HOME", "JIMENG_LOG", "ARK_API_KEY"} <= found


def test_every_variable_read_is_in_the_readme_table() -> None:
    assert sorted(variables_read() - configuration_table()) == []


def test_the_table_names_no_variable_the_package_ignores() -> None:
    assert sorted(configuration_table() - variables_read()) == []
