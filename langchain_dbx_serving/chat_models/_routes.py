"""Where a chat class sends its requests: serving-endpoint routes, AI Gateway, Apps by name.

Routes (PROTOCOLS.md sections 1 and 11; databricks-openai's ``_resolve_base_url``):

- ``invocations``: ``{host}/serving-endpoints/{endpoint}/invocations``;
- ``chat/completions`` / ``responses``: ``{host}/serving-endpoints/...`` with ``"model"``;
- ``ai-gateway``: AI Gateway's unified routes ``{host}/ai-gateway/mlflow/v1/chat/completions``
  and ``.../responses``, ``"model"`` being a served model id such as
  ``system.ai.claude-sonnet-4-5``;
- ``ai-gateway/openai``: the provider-native OpenAI route ``{host}/ai-gateway/openai/v1/...``.

AI Gateway's other provider-native routes (``/ai-gateway/anthropic``, ``/ai-gateway/gemini``)
speak the providers' own protocols (Anthropic Messages, Gemini), which this package does not
encode; asking for one raises :class:`ConfigurationError` (:func:`check_route`).

An App addressed by name is looked up once per host and name with the workspace API
(``GET /api/2.0/apps/{name}``, its ``url``), with the same credentials, and cached.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Literal

from langchain_dbx_serving import auth
from langchain_dbx_serving.errors import APIStatusError, ConfigurationError

if TYPE_CHECKING:
    from langchain_dbx_serving._connection import DatabricksConnection

GatewayRoute = Literal["ai-gateway", "ai-gateway/openai"]
GATEWAY_ROOTS: dict[str, str] = {
    "ai-gateway": "/ai-gateway/mlflow/v1",
    "ai-gateway/openai": "/ai-gateway/openai/v1",
}

# Routes no chat class serves, and what to use instead (see check_route).
_NATIVE_ROUTES = {
    "ai-gateway/anthropic": "the Anthropic Messages protocol",
    "ai-gateway/gemini": "the Gemini protocol",
}

_SERVING = "/serving-endpoints"
_APP_URLS: dict[tuple[str, str], str] = {}
_APP_LOCK = threading.Lock()


def workspace_host(conn: DatabricksConnection) -> str:
    """The workspace URL (``host``, else a ``.../serving-endpoints`` ``base_url``'s root, else
    the credentials' host), without a trailing slash."""
    base = (conn.base_url or "").rstrip("/")
    from_base = base[: -len(_SERVING)] if base.endswith(_SERVING) else None
    host = auth.normalize_host(conn.host or from_base or conn.transport.credentials.host)
    if not host:
        raise ConfigurationError(
            "no Databricks host for an AI Gateway or App route: pass host=, set "
            "DATABRICKS_HOST, or configure a profile in ~/.databrickscfg"
        )
    return host


def check_route(value: Any, supported: tuple[str, ...], owner: str) -> str:
    """``value`` when it is one of ``supported``, else a :class:`ConfigurationError` that
    names the supported routes (and, for a provider-native gateway route, why it is not one).

    >>> check_route("ai-gateway", ("invocations", "ai-gateway"), "ChatDatabricksServing")
    'ai-gateway'
    """
    if isinstance(value, str) and value in supported:
        return value
    choices = ", ".join(repr(r) for r in supported)
    key = value.strip("/").lower() if isinstance(value, str) else None
    why = ""
    if key in _NATIVE_ROUTES:
        why = (
            f" {value!r} is AI Gateway's provider-native route and speaks "
            f"{_NATIVE_ROUTES[key]}, which this package does not encode: use "
            "route='ai-gateway' (the unified route serves the same models, e.g. "
            "endpoint='system.ai.claude-sonnet-4-5')."
        )
    raise ConfigurationError(f"{owner} has no route {value!r}: use one of {choices}.{why}")


def gateway_url(conn: DatabricksConnection, route: str, path: str) -> str:
    """``{host}/ai-gateway/<api>/v1/<path>`` for a gateway route."""
    return f"{workspace_host(conn)}{GATEWAY_ROOTS[route]}/{path}"


def app_name(endpoint: str) -> str | None:
    """``name`` for an ``apps/<name>`` endpoint (the official clients' convention), else None.

    >>> app_name("apps/my-agent"), app_name("my-agent")
    ('my-agent', None)
    """
    prefix = "apps/"
    if endpoint.startswith(prefix) and len(endpoint) > len(prefix):
        return endpoint[len(prefix) :]
    return None


def app_url(conn: DatabricksConnection, name: str) -> str:
    """The URL of the Databricks App ``name``, resolved once per workspace and cached.

    Raises :class:`EndpointNotFoundError` when the workspace has no such App (or it is not
    visible to these credentials) and :class:`ConfigurationError` when it has no URL yet.
    """
    host = workspace_host(conn)
    with _APP_LOCK:
        cached = _APP_URLS.get((host, name))
    if cached:
        return cached
    info = _get_app(conn, f"{host}/api/2.0/apps/{name}", name)
    url = info.get("url") if isinstance(info, dict) else None
    if not isinstance(url, str) or not url:
        raise ConfigurationError(
            f"Databricks App '{name}' has no URL yet: check that it is deployed and running",
            endpoint=name,
        )
    url = url.rstrip("/")
    with _APP_LOCK:
        _APP_URLS[(host, name)] = url
    return url


def _get_app(conn: DatabricksConnection, url: str, name: str) -> Any:
    # The transport's GET: its credentials, deadline, retries and typed errors.
    try:
        return conn.transport.get_json(url, endpoint=name)
    except APIStatusError as exc:
        raise type(exc)(
            f"looking up Databricks App '{name}' failed with HTTP {exc.status_code}: "
            "check the App's name and that your credentials can see it (CAN_USE)",
            status_code=exc.status_code,
            endpoint=name,
            request_id=exc.request_id,
        ) from None
