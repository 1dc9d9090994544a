"""``import jimeng`` stays light: the sandbox, the webhook receiver, the CLI, aiohttp's server,
tenacity and the edit/transform request models load only when used (checked in a fresh
interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.subprocess

HEAVY = (
    "jimeng.sandbox",
    "jimeng.webhooks",
    "jimeng.cli",
    "aiohttp.web",
    "tenacity",
    "jimeng.models._transforms",
)


def modules_after(code: str) -> set[str]:
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_import_jimeng_leaves_the_heavy_parts_out() -> None:
    loaded = modules_after("import jimeng")
    assert "jimeng._client" in loaded
    assert [name for name in HEAVY if name in loaded] == []
    assert not any(name.startswith("jimeng.backends.dreamina") for name in loaded)


def test_the_lazy_names_load_on_first_use() -> None:
    loaded = modules_after(
        "import jimeng\n"
        "assert jimeng.Sandbox.__module__ == 'jimeng.sandbox'\n"
        "assert jimeng.WebhookReceiver.__name__ == 'WebhookReceiver'\n"
        "assert 'Volcengine' in dir(jimeng)\n"
        "from jimeng import Dreamina, SyncClient, SQLiteJournal"
    )
    assert {"jimeng.sandbox", "aiohttp.web", "jimeng.backends.dreamina", "jimeng._sync"} <= loaded


def test_the_transform_requests_load_on_first_use_from_either_module() -> None:
    loaded = modules_after(
        "import jimeng, jimeng.models\n"
        "assert jimeng.InpaintRequest is jimeng.models.InpaintRequest\n"
        "from jimeng import REMOVE_PROMPT, MediaInput\n"
        "from jimeng.models import AvatarRequest, UpscaleRequest\n"
        "assert REMOVE_PROMPT == '删除' and AvatarRequest.__module__ == 'jimeng.models._transforms'"
    )
    assert "jimeng.models._transforms" in loaded


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    import jimeng
    import jimeng.models

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        jimeng.models.Nope  # noqa: B018


def test_an_unknown_top_level_name_is_still_an_attribute_error() -> None:
    import jimeng

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        jimeng.Nope  # noqa: B018
