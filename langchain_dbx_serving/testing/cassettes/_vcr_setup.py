"""vcrpy glue: the readable YAML serializer, registration on a ``VCR``, a cassette helper.

This module imports vcrpy and PyYAML; the plugin imports it only once a cassette is being set up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import vcr
import yaml
from vcr.serializers import yamlserializer

from langchain_dbx_serving.testing.cassettes._vcr_config import (
    BODY_MATCHER,
    databricks_vcr_config,
    match_json_body,
)

__all__ = ["ReadableYAML", "apply_defaults", "databricks_cassette", "register"]


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (SSE bodies) as literal blocks, so a cassette reads like the stream."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML falls back to a quoted style by itself when a literal block cannot hold the text
    # exactly (carriage returns, trailing spaces, control characters).
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


class ReadableYAML:
    """A vcrpy serializer: standard cassette YAML (vcrpy's loader reads it), written with SSE
    bodies as literal blocks and keys in the order vcrpy builds them (method, uri, body, ...)."""

    @staticmethod
    def serialize(cassette_dict: Mapping[str, Any]) -> str:
        return yaml.dump(
            cassette_dict, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100
        )

    @staticmethod
    def deserialize(cassette_string: str) -> Any:
        return yamlserializer.deserialize(cassette_string)


def register(recorder: vcr.VCR, *, readable: bool = True) -> None:
    """Register the body matcher (always harmless: a new name) and, with ``readable``, the
    readable serializer as ``yaml`` on one ``VCR``."""
    recorder.register_matcher(BODY_MATCHER, match_json_body)
    if readable:
        recorder.register_serializer("yaml", ReadableYAML)


def apply_defaults(recorder: vcr.VCR, config: Mapping[str, Any]) -> None:
    """Make ``config`` the ``VCR``'s defaults: options given to ``use_cassette`` still win."""
    recorder.before_record_request = config["before_record_request"]
    recorder.before_record_response = config["before_record_response"]
    recorder.match_on = tuple(config["match_on"])
    recorder.decode_compressed_response = config["decode_compressed_response"]


def databricks_cassette(
    path: str | Path,
    *,
    record_mode: str = "none",
    hosts: Iterable[str] = (),
    secrets: Iterable[str] = (),
    **options: Any,
) -> Any:
    """A vcrpy cassette context manager with the Databricks configuration, outside pytest.

    ``record_mode`` is vcrpy's (``"none"`` replays only; ``"once"`` records a missing
    cassette); ``hosts`` and ``secrets`` are hidden in addition to those of the environment;
    other ``options`` go to ``use_cassette`` over the defaults.

    Example::

        with databricks_cassette("cassettes/demo.yaml", record_mode="once"):
            ChatDatabricksServing(endpoint="my-endpoint").invoke("hi")
    """
    recorder = vcr.VCR()
    register(recorder)
    config = {**databricks_vcr_config(hosts=hosts, secrets=secrets), **options}
    return recorder.use_cassette(str(path), record_mode=record_mode, **config)
