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

import os
from typing import Any

import httpx
from langchain_core.utils import from_env
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from langchain_dbx_serving import _arguments, _check, _paths, auth
from langchain_dbx_serving._check import CheckReport
from langchain_dbx_serving._lifecycle import Closeable
from langchain_dbx_serving.errors import ConfigurationError
from langchain_dbx_serving.transport.client import Transport

__all__ = ["DatabricksConnection"]

_ARGUMENT = "the token= (api_key=) argument"
_ENVIRONMENT = "the DATABRICKS_TOKEN environment variable"


def _token_from_env() -> SecretStr | None:
    """``DATABRICKS_TOKEN``, validated (stripped; an empty or garbled value is an error)."""
    value = os.environ.get("DATABRICKS_TOKEN")
    return None if value is None else SecretStr(auth.clean_secret(value, _ENVIRONMENT))


class DatabricksConnection(Closeable, BaseModel):
    """Host, credentials and HTTP settings, and the :class:`Transport` built from them."""

    model_config = ConfigDict(
        populate_by_name=True, arbitrary_types_allowed=True, protected_namespaces=()
    )

    host: str | None = Field(default_factory=from_env("DATABRICKS_HOST", default=None))
    """Workspace URL, e.g. ``https://adb-1.azuredatabricks.net`` (default: ``DATABRICKS_HOST``)."""
    token: SecretStr | None = Field(default_factory=_token_from_env, alias="api_key")
    """Bearer token (default: ``DATABRICKS_TOKEN``; else databricks-sdk's unified auth).
    Surrounding whitespace is stripped; an empty token, or one holding a control or non-ASCII
    character, is a ``ConfigurationError``. An explicit ``token=`` travels with a pickled copy
    (Spark executors need it); one read from ``DATABRICKS_TOKEN`` is read again after unpickling."""
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
    propagate_trace_context: bool = True
    """Send a W3C ``traceparent`` header with calls made inside an active MLflow (or
    OpenTelemetry) span, so a server that honours it joins the caller's trace."""
    http_client: httpx.Client | None = Field(default=None, exclude=True, repr=False)
    http_async_client: httpx.AsyncClient | None = Field(default=None, exclude=True, repr=False)

    _transport: Transport | None = PrivateAttr(default=None)
    _workspace_config: dict[str, Any] | None = PrivateAttr(default=None)

    @field_validator("token")
    @classmethod
    def _clean_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is None:
            return None
        return SecretStr(auth.clean_secret(token.get_secret_value(), _ARGUMENT))

    @model_validator(mode="before")
    @classmethod
    def _check_arguments(cls, data: Any) -> Any:
        # Aliases of other packages mapped, unknown names refused: see _arguments.py.
        return _arguments.normalize(cls, data)

    def __getstate__(self) -> dict[Any, Any]:
        # Injected httpx clients hold locks and sockets and belong to this process: a copy
        # (Spark executors, multiprocessing) builds its own pooled clients instead.
        # Credentials from the environment, a profile or a WorkspaceClient are not carried: the
        # copy resolves them again where it runs. Only an explicit token= travels.
        state = super().__getstate__()
        fields = dict(state["__dict__"])
        fields.update(http_client=None, http_async_client=None, workspace_client=None)
        if "token" not in self.model_fields_set:
            fields["token"] = None
        private = dict(state.get("__pydantic_private__") or {})
        if self.workspace_client is not None:
            private["_workspace_config"] = auth.public_config(self.workspace_client.config)
        return {**state, "__dict__": fields, "__pydantic_private__": private}

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        if "token" not in self.model_fields_set and self.token is None:
            self.__dict__["token"] = _token_from_env()

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
        source = _ARGUMENT if "token" in self.model_fields_set else _ENVIRONMENT
        if token is None and self.workspace_client is None and self._workspace_config:
            return auth.SdkCredentials(auth.sdk_config(**self._workspace_config))
        return auth.resolve(
            host=self.host, token=token, workspace_client=self.workspace_client, source=source
        )

    def _root_url(self) -> str:
        """``base_url``, else ``{host}/serving-endpoints``, without a trailing slash."""
        if self.base_url:
            return _paths.check_base_url(self.base_url)
        host = auth.normalize_host(self.host or self.transport.credentials.host)
        if not host:
            raise ConfigurationError(
                "no Databricks host: pass host= (or base_url=), set DATABRICKS_HOST, or "
                "configure a profile in ~/.databrickscfg"
            )
        return host + "/serving-endpoints"
