"""Where request headers come from: a static token, or a databricks-sdk ``Config``.

No HTTP happens here. The databricks-sdk is imported only when a ``Config`` is actually needed
(no explicit token), because it takes most of a second to import.

Resolution order, first match wins:

1. an explicit ``token`` (or ``DATABRICKS_TOKEN``, read by the chat classes at construction);
2. a given ``workspace_client`` (its ``config`` is asked for headers on every request);
3. a databricks-sdk ``Config`` built from ``host`` and the environment / ``~/.databrickscfg``
   (profiles, OAuth M2M, Azure, ...), asked for headers on every request so OAuth tokens refresh.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any, Protocol
from urllib.parse import urlsplit

from langchain_dbx_serving.errors import ConfigurationError

__all__ = [
    "Credentials",
    "SdkCredentials",
    "TokenCredentials",
    "check_url_is_safe",
    "is_loopback",
    "normalize_host",
    "resolve",
]


class Credentials(Protocol):
    """Anything that can give the headers for the next request, and perhaps the workspace host."""

    @property
    def host(self) -> str | None: ...

    def headers(self) -> dict[str, str]: ...


class TokenCredentials:
    """A static bearer token (a ``dapi...`` personal access token or any access token)."""

    __slots__ = ("_headers", "_host")

    def __init__(self, token: str, host: str | None = None) -> None:
        self._headers = {"Authorization": f"Bearer {token}"}
        self._host = host

    @property
    def host(self) -> str | None:
        return self._host

    def headers(self) -> dict[str, str]:
        return self._headers

    def __repr__(self) -> str:
        return f"TokenCredentials(host={self._host!r}, token='**********')"


class SdkCredentials:
    """Headers from a databricks-sdk ``Config``; it refreshes OAuth tokens as needed."""

    __slots__ = ("_config",)

    def __init__(self, config: Any) -> None:
        self._config = config

    @property
    def host(self) -> str | None:
        return getattr(self._config, "host", None)

    def headers(self) -> dict[str, str]:
        try:
            return dict(self._config.authenticate())
        except Exception as exc:
            raise ConfigurationError(
                f"databricks-sdk could not produce credentials ({type(exc).__name__}: {exc}); "
                "check your Databricks profile or OAuth settings"
            ) from None

    def __repr__(self) -> str:
        return f"SdkCredentials(host={self.host!r})"


_WORKSPACE_DOMAINS = (
    ".cloud.databricks.com",
    ".azuredatabricks.net",
    ".gcp.databricks.com",
    ".databricks.azure.cn",
    ".databricks.azure.us",
    ".cloud.databricks.us",
    ".cloud.databricks.mil",
)
_SERVING_SUFFIX = "/serving-endpoints"


def normalize_host(host: str | None) -> str | None:
    """A workspace URL without trailing ``/`` or ``/serving-endpoints``.

    A host without a scheme gets ``https://`` only when it is a Databricks workspace domain;
    anything else (``127.0.0.1:8080``, a gateway) is a :class:`ConfigurationError` saying
    which scheme to write, because guessing wrong means a TLS error or a cleartext token.

    Example:
        >>> normalize_host("adb-1.azuredatabricks.net/")
        'https://adb-1.azuredatabricks.net'
        >>> normalize_host("https://adb-1.azuredatabricks.net/serving-endpoints/")
        'https://adb-1.azuredatabricks.net'
    """
    if not host:
        return None
    host = host.strip().rstrip("/")
    if host.lower().endswith(_SERVING_SUFFIX):
        # The OpenAI base_url habit: {workspace}/serving-endpoints is the base, not the host.
        host = host[: -len(_SERVING_SUFFIX)].rstrip("/")
    if "://" not in host:
        name = (urlsplit("//" + host).hostname or "").rstrip(".").lower()
        if not name.endswith(_WORKSPACE_DOMAINS):
            local = is_loopback("//" + host)
            fixed = ("http://" if local else "https://") + host
            why = "a local endpoint or tunnel" if local else "a gateway or custom domain"
            raise ConfigurationError(
                f"host {host!r} has no scheme: write {fixed!r} if it is {why}; only "
                "Databricks workspace domains get https:// added, because a wrong guess means "
                "a TLS error or a token sent in clear text"
            )
        host = "https://" + host
    return host


def is_loopback(url: str) -> bool:
    """Whether a URL points at this machine (``localhost``, ``127.0.0.0/8`` or ``::1``)."""
    hostname = (urlsplit(url).hostname or "").rstrip(".").lower()
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def check_url_is_safe(url: str, *, allow_insecure_http: bool = False) -> None:
    """Refuse to send credentials over plain ``http://`` to a host that is not loopback.

    A bearer token sent in clear text can be read by anyone on the path; loopback traffic
    (a local endpoint, a tunnel) never leaves the machine, so it stays allowed.

    Example:
        >>> check_url_is_safe("http://127.0.0.1:8080/serving-endpoints/x/invocations")
        >>> check_url_is_safe("http://gateway.internal/x", allow_insecure_http=True)
    """
    if allow_insecure_http or urlsplit(url).scheme.lower() != "http" or is_loopback(url):
        return
    host = urlsplit(url).netloc
    raise ConfigurationError(
        f"refusing to send the Databricks token over plain http:// to {host!r}: anyone on the "
        "network path could read it. Use an https:// host or base_url, or pass "
        "allow_insecure_http=True if this network is trusted"
    )


def resolve(*, host: str | None, token: str | None, workspace_client: Any = None) -> Credentials:
    """Pick the credentials for a client, following the order in the module docstring."""
    if token:
        return TokenCredentials(token, normalize_host(host or os.environ.get("DATABRICKS_HOST")))
    if workspace_client is not None:
        return SdkCredentials(workspace_client.config)
    return SdkCredentials(_sdk_config(normalize_host(host)))


def _sdk_config(host: str | None) -> Any:
    try:
        from databricks.sdk.core import Config
    except ImportError:  # pragma: no cover - databricks-sdk is a dependency
        raise ConfigurationError(
            "databricks-sdk is not installed; pass token= explicitly"
        ) from None
    try:
        return Config(host=host) if host else Config()
    except Exception as exc:
        raise ConfigurationError(
            f"no Databricks credentials found ({exc}). Pass host= and token=, set "
            "DATABRICKS_HOST and DATABRICKS_TOKEN, or configure a profile in ~/.databrickscfg "
            "(DATABRICKS_CONFIG_PROFILE)"
        ) from None
