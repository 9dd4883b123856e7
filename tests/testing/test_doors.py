"""The documented module paths of ``testing/`` are doors to its rooms: each one offers the very
objects its room defines, and the plugin module pytest registers offers every hook and fixture
of the cassette plugin (pytest finds them as attributes of the registered module)."""

from __future__ import annotations

import importlib

import pytest

DOORS = {
    "endpoint": "local_endpoint.server",
    "replies": "local_endpoint.replies",
    "backends": "local_endpoint.backends",
    "record": "cassettes.record",
    "plugin": "cassettes.plugin",
}


def _module(name: str):
    return importlib.import_module(f"langchain_dbx_serving.testing.{name}")


@pytest.mark.parametrize("door", sorted(DOORS))
def test_a_door_offers_the_rooms_public_names(door: str) -> None:
    room = _module(DOORS[door])
    public = _module(door)
    assert sorted(public.__all__) == sorted(room.__all__)
    assert [n for n in room.__all__ if getattr(public, n) is not getattr(room, n)] == []


def test_the_registered_plugin_module_has_every_hook_and_fixture() -> None:
    room = _module("cassettes.plugin")
    registered = _module("plugin")
    hooks = [n for n in dir(room) if n.startswith("pytest_")]
    fixtures = [n for n in dir(room) if type(getattr(room, n)).__name__.startswith("Fixture")]
    assert len(hooks) >= 6 and {"dbx_chat", "dbx_serving", "dbx_vcr_config"} <= set(fixtures)
    missing = [n for n in hooks + fixtures if getattr(registered, n, None) is not getattr(room, n)]
    assert missing == []


def test_the_package_exports_resolve_to_the_rooms() -> None:
    import langchain_dbx_serving.testing as testing

    for name in testing.__all__:
        assert getattr(testing, name) is not None
    assert testing.LocalEndpoint is _module("endpoint").LocalEndpoint
    assert testing.Reply is _module("replies").Reply
