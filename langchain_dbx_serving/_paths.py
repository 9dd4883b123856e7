"""Endpoint names and base URLs as URL parts that cannot change where a request goes.

A serving endpoint name is one path segment of ``/serving-endpoints/{name}/invocations``. The
Databricks serving API says "an endpoint name can consist of alphanumeric characters, dashes, and
underscores" (databricks-sdk, ``serving.CreateServingEndpoint.name``); :func:`endpoint_segment`
also accepts dots after the first character (local and self-hosted servers use them) and refuses
everything else, so ``..``, ``/``, ``?``, ``#``, ``%`` or whitespace in a name can never move the
request to another path, query or fragment with the caller's token.

Example:
    >>> endpoint_segment("databricks-claude-sonnet-4")
    'databricks-claude-sonnet-4'
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from langchain_dbx_serving.errors import ConfigurationError

__all__ = ["check_base_url", "endpoint_segment"]

_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")


def endpoint_segment(name: str) -> str:
    """``name`` if it is a valid endpoint name (one path segment), else a ConfigurationError."""
    if isinstance(name, str) and _NAME.fullmatch(name):
        return name
    raise ConfigurationError(
        f"invalid serving endpoint name {name!r}: Databricks endpoint names hold only letters, "
        "digits, '-' and '_' (and '.' here, though not first), so that the name stays one "
        "segment of the URL. Check the endpoint= / model= value"
    )


def check_base_url(url: str) -> str:
    """``url`` without a trailing slash; a ConfigurationError when it has a query, a fragment
    or user info (those would travel with every request, or change its target)."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        raise ConfigurationError(
            f"base_url {url!r} is not an absolute URL: give it as https://host[/path]"
        )
    if parts.query or parts.fragment or "?" in url or "#" in url or "@" in parts.netloc:
        raise ConfigurationError(
            "base_url must be a plain scheme://host[:port][/path] without user info, '?' query "
            f"or '#' fragment (got {parts.scheme}://{parts.hostname}...): pass credentials as "
            "token= and the endpoint as endpoint="
        )
    return url.strip().rstrip("/")
