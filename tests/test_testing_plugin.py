"""The pytest plugin (``jimeng.testing``, entry point ``pytest11``) in users' test sessions."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "test_my_app.py"
#: A user's project: strict pytest-asyncio, warnings are errors.
USER_INI = (
    "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    "filterwarnings = error\n"
)


def test_the_documented_example_passes(pytester: pytest.Pytester) -> None:
    pytester.makeini(USER_INI)
    pytester.makepyfile(test_my_app=EXAMPLE.read_text(encoding="utf-8"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")  # a fresh process: found
    result.assert_outcomes(passed=4)  # through the entry point alone


def test_fixtures_counters_faults_and_marker(pytester: pytest.Pytester) -> None:
    pytester.makeini(USER_INI)
    pytester.makepyfile(
        """
        import pytest
        import jimeng
        from jimeng.sandbox import Stages

        def test_started_with_counters(jimeng_sandbox):
            assert isinstance(jimeng_sandbox, jimeng.Sandbox)
            assert jimeng_sandbox.protocol == "volcengine"
            assert jimeng_sandbox.server.running
            assert sum(jimeng_sandbox.server.requests.values()) == 0

        @pytest.mark.jimeng_sandbox(protocol="dreamina", stages=Stages(queue_polls=2))
        def test_marker(jimeng_sandbox, jimeng_sync_client):
            assert jimeng_sandbox.protocol == "dreamina"
            result = jimeng_sync_client.images.generate("a cat")
            (task_id,) = jimeng_sandbox.server.tasks
            assert result.task_id == task_id and jimeng_sandbox.server.polls[task_id] == 3

        @pytest.mark.asyncio
        async def test_fault_injection(jimeng_sandbox, jimeng_client):
            jimeng_sandbox.server.inject("poll", "http", status=500, code=50500, times=5)
            with pytest.raises(jimeng.ServerError):
                await jimeng_client.images.generate("a cat", size="1K")

        @pytest.mark.asyncio
        async def test_each_test_gets_a_fresh_server(jimeng_sandbox, jimeng_client):
            await jimeng_client.images.generate("a cat", size="1K")
            assert jimeng_sandbox.server.requests["submit"] == 1

        def test_fast_polling_for_clients_made_in_the_test(jimeng_sandbox):
            import os
            assert os.environ["JIMENG_POLL_INTERVAL"] == "0.01"
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_the_marker_is_registered(pytester: pytest.Pytester) -> None:
    pytester.makeini(USER_INI + "addopts = --strict-markers\n")
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.jimeng_sandbox(protocol='volcengine'*"])
