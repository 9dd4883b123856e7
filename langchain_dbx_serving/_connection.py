"""Connection fields shared by the classes that call serving endpoints.

:class:`DatabricksConnection` is a pydantic mixin holding where to send requests (``host``,
``base_url``), with which credentials (``token`` alias ``api_key``, ``workspace_client``) and
how (``timeout``, ``max_retries``, ``allow_insecure_http``, injected httpx clients), plus the
lazily created :class:`~langchain_dbx_serving.transport.client.Transport`. It holds no
wire-format logic.

Example:
    >>> class Client(DatabricksConnection):
    ...     pass
    >>> Client(host="https://adb-1.azuredatabricks.net", token="t")._root_url()
    'https://adb-1.azuredatabricks.net/serving-endpoints'
"""

from __future__ import annotations

from typing import Any

import httpx
from langchain_core.utils import from_env, secret_from_env
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr

from langchain_dbx_serving import _check, auth
from langchain_dbx_serving._check import CheckReport
from langchain_dbx_serving._lifecycle import Closeable
from langchain_dbx_serving.errors import ConfigurationError
from langchain_dbx_serving.transport.client import Transport

__all__ = ["DatabricksConnection"]


class DatabricksConnection(Closeable, BaseModel):
    """Host, credentials and HTTP settings, and the :class:`Transport` built from them."""

    model_config = ConfigDict(
        populate_by_name=True, arbitrary_types_allowed=True, protected_namespaces=()
    )

    host: str | None = Field(default_factory=from_env("DATABRICKS_HOST", default=None))
    """Workspace URL, e.g. ``https://adb-1.azuredatabricks.net`` (default: ``DATABRICKS_HOST``)."""
    token: SecretStr | None = Field(
        default_factory=secret_from_env("DATABRICKS_TOKEN", default=None), alias="api_key"
    )
    """Bearer token (default: ``DATABRICKS_TOKEN``; else databricks-sdk's unified auth)."""
    base_url: str | None = None
    """Overrides ``{host}/serving-endpoints``."""
    workspace_client: Any = Field(default=None, exclude=True, repr=False)
    """A ``databricks.sdk.WorkspaceClient`` whose config provides host and credentials."""
    timeout: float | None = 120.0
    """Seconds the whole call may take: credentials, connect, every byte of the reply (streams
    included) and retries. Keep-alive comments do not extend it. ``None``: no bound."""
    max_retries: int = 3
    """Retries of 429, 503 and failed connections, before any byte of a reply arrived (each
    one is a ``databricks_retry`` custom event), within ``timeout``."""
    allow_insecure_http: bool = False
    """Allow sending the token over plain ``http://`` to a host that is not loopback."""
    http_client: httpx.Client | None = Field(default=None, exclude=True, repr=False)
    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True, repr=False)

    _transport: Transport | None = PrivateAttr(default=None)

    def __getstate__(self) -> dict[Any, Any]:
        # Injected httpx clients hold locks and sockets and belong to this process: a copy
        # (Spark executors, multiprocessing) builds its own pooled clients instead.
        state = super().__getstate__()
        fields = dict(state["__dict__"])
        fields.update(http_client=None, http_async_client=None)
        return {**state, "__dict__": fields}

    @property
    def transport(self) -> Transport:
        """The HTTP transport, created on first use and reused (its pools) across calls."""
        if self._transport is None:
            self._transport = Transport(
                self._credentials,
                timeout=self.timeout,
                max_retries=self.max_retries,
                http_client=self.http_client,
                http_async_client=self.http_async_client,
                allow_insecure_http=self.allow_insecure_http,
            )
        return self._transport

    def check(self) -> CheckReport:
        """Validate host, credentials and the endpoint in one cheap request (no model runs),
        within ``timeout``: a :class:`CheckReport`, or the typed error a call would raise.

        Example:
            .. code-block:: python

                print(ChatDatabricksServing(endpoint="my-agent").check())
        """
        return _check.check(self)

    async def acheck(self) -> CheckReport:
        """Async :meth:`check`."""
        return await _check.acheck(self)

    def _owned(self) -> list[Transport]:
        return [self._transport] if self._transport is not None else []

    def _credentials(self) -> auth.Credentials:
        token = self.token.get_secret_value() if self.token else None
        return auth.resolve(host=self.host, token=token, workspace_client=self.workspace_client)

    def _root_url(self) -> str:
        """``base_url``, else ``{host}/serving-endpoints``, without a trailing slash."""
        if self.base_url:
            return self.base_url.rstrip("/")
        host = auth.normalize_host(self.host or self.transport.credentials.host)
        if not host:
            raise ConfigurationError(
                "no Databricks host: pass host= (or base_url=), set DATABRICKS_HOST, or "
                "configure a profile in ~/.databrickscfg"
            )
        return host + "/serving-endpoints"
