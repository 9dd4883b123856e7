"""The pytest plugin's registered module (the ``pytest11`` entry point ``langchain_dbx_serving``).

The plugin is :mod:`langchain_dbx_serving.testing.cassettes.plugin` (its docstring says what it
offers); pytest registers the hooks and fixtures a module has as attributes, so this module
names every one of them, as well as the plugin's public API. Importing it imports no vcrpy.
"""

from __future__ import annotations

from langchain_dbx_serving.testing.cassettes.plugin import (
    PLACEHOLDER_HOST,
    REPLAY_TOKEN,
    ServingTarget,
    databricks_cassette,
    databricks_vcr_config,
    dbx_chat,
    dbx_serving,
    dbx_vcr_config,
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_fixture_setup,
    pytest_recording_configure,
    pytest_runtest_call,
    pytest_runtest_makereport,
)

__all__ = [
    "PLACEHOLDER_HOST",
    "REPLAY_TOKEN",
    "ServingTarget",
    "databricks_cassette",
    "databricks_vcr_config",
]
# Hooks and fixtures, for pytest (not API).
_PYTEST = (
    dbx_chat,
    dbx_serving,
    dbx_vcr_config,
    pytest_addoption,
    pytest_collection_modifyitems,
    pytest_fixture_setup,
    pytest_recording_configure,
    pytest_runtest_call,
    pytest_runtest_makereport,
)
