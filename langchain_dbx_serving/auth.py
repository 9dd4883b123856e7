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

import functools
import ipaddress
import os
import unicodedata
from typing import Any, Protocol
from urllib.parse import urlsplit

from langchain_dbx_serving import _redact
from langchain_dbx_serving.errors import ConfigurationError

__all__ = [
    "Credentials",
    "SdkCredentials",
    "TokenCredentials",
    "check_url_is_safe",
    "clean_secret",
    "is_loopback",
    "normalize_host",
    "public_config",
    "resolve",
    "sdk_config",
]


class Credentials(Protocol):
    """Anything that can give the headers for the next request, and perhaps the workspace host."""

    @property
    def host(self) -> str | None: ...

    def headers(self) -> dict[str, str]: ...


# Secrets databricks-sdk may read from the environment, by Config attribute.
_SDK_SECRET_ENV = (
    ("token", "DATABRICKS_TOKEN"),
    ("client_secret", "DATABRICKS_CLIENT_SECRET"),
    ("azure_client_secret", "ARM_CLIENT_SECRET"),
    ("password", "DATABRICKS_PASSWORD"),
)


def clean_secret(value: str, source: str) -> str:
    """``value`` without surrounding whitespace, or a :class:`ConfigurationError` naming
    ``source`` (never the value) when it is empty or holds a control or non-ASCII character.

    A token read from a file keeps its trailing newline, and one pasted from a web page may hold
    a zero-width space: neither can go into an HTTP header, and the error httpx would raise
    quotes the whole header.

    Example:
        >>> clean_secret(" dapi-token-value\\n", "the token= argument")
        'dapi-token-value'
    """
    cleaned = value.strip()
    if not cleaned:
        raise ConfigurationError(
            f"{source} is empty: set it to your Databricks token or client secret, or unset it "
            "to use another source of credentials"
        )
    for char in cleaned:
        if not " " < char < "\x7f":
            what = (
                "an invisible or control character"
                if unicodedata.category(char)[0] == "C"
                else "a character"
            )
            name = unicodedata.name(char, "unnamed")
            raise ConfigurationError(
                f"{source} holds {what} that cannot be sent in an HTTP header (U+{ord(char):04X} "
                f"{name}; tokens are printable ASCII): copy the token again, e.g. with "
                "`databricks auth token` or from the workspace's settings page"
            )
    _redact.remember(cleaned)
    return cleaned


class TokenCredentials:
    """A static bearer token (a ``dapi...`` personal access token or any access token)."""

    __slots__ = ("_headers", "_host")

    def __init__(self, token: str, host: str | None = None, source: str = "the token") -> None:
        token = clean_secret(token, source)
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
            headers = dict(self._config.authenticate())
        except Exception as exc:
            raise ConfigurationError(
                f"databricks-sdk could not produce credentials ({type(exc).__name__}: {exc}); "
                "check your Databricks profile or OAuth settings"
            ) from None
        for name, value in headers.items():
            if name.lower() in _redact.SECRET_HEADERS:
                scheme, _, credential = value.strip().partition(" ")
                source = f"the {name} credential from {_sdk_source(self._config)}"
                headers[name] = (
                    f"{scheme} {clean_secret(credential, source)}"
                    if credential
                    else (clean_secret(scheme, source))
                )
        _redact.secrets_in(headers)
        return headers

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


@functools.lru_cache(maxsize=256)
def _clear_text_off_machine(url: str) -> bool:
    """Whether ``url`` is plain ``http://`` to a host that is not loopback. A pure function of
    the string, checked on every attempt of every call: cached (a few URLs per process)."""
    return urlsplit(url).scheme.lower() == "http" and not is_loopback(url)


def check_url_is_safe(url: str, *, allow_insecure_http: bool = False) -> None:
    """Refuse to send credentials over plain ``http://`` to a host that is not loopback.

    A bearer token sent in clear text can be read by anyone on the path; loopback traffic
    (a local endpoint, a tunnel) never leaves the machine, so it stays allowed.

    Example:
        >>> check_url_is_safe("http://127.0.0.1:8080/serving-endpoints/x/invocations")
        >>> check_url_is_safe("http://gateway.internal/x", allow_insecure_http=True)
    """
    if allow_insecure_http or not _clear_text_off_machine(url):
        return
    host = urlsplit(url).netloc
    raise ConfigurationError(
        f"refusing to send the Databricks token over plain http:// to {host!r}: anyone on the "
        "network path could read it. Use an https:// host or base_url, or pass "
        "allow_insecure_http=True if this network is trusted"
    )


def _sdk_source(config: Any) -> str:
    """Where a databricks-sdk ``Config`` took its credentials from, for error messages."""
    auth_type = getattr(config, "auth_type", None) or "default"
    profile = getattr(config, "profile", None)
    where = f", profile {profile!r}" if profile else ""
    return f"databricks-sdk (auth type {auth_type!r}{where})"


def resolve(
    *,
    host: str | None,
    token: str | None,
    workspace_client: Any = None,
    source: str = "the token= argument",
) -> Credentials:
    """Pick the credentials for a client, following the order in the module docstring.

    ``source`` names where ``token`` came from, for errors about it.
    """
    if token is not None:
        host = normalize_host(host or os.environ.get("DATABRICKS_HOST"))
        return TokenCredentials(token, host, source)
    if workspace_client is not None:
        return SdkCredentials(workspace_client.config)
    host = normalize_host(host)
    return SdkCredentials(sdk_config(host=host) if host else sdk_config())


_LOCAL_SETTINGS = frozenset({"auth_type", "config_file"})


def public_config(config: Any) -> dict[str, Any]:
    """The settings of a databricks-sdk ``Config`` that are not secrets (host, profile, client
    id, ...), to build an equivalent ``Config`` in another process. The auth type and config
    file are left out: they were found on this machine, and the other resolves its own."""
    out = {}
    for attribute in type(config).attributes():
        value = getattr(config, attribute.name, None)
        if attribute.name in _LOCAL_SETTINGS:
            continue
        if value is not None and not attribute.sensitive:
            out[attribute.name] = value
    return out


def sdk_config(**settings: Any) -> Any:
    """A databricks-sdk ``Config`` from ``settings`` and the environment / profiles, whose
    secrets are validated (see :func:`clean_secret`)."""
    try:
        from databricks.sdk.core import Config
    except ImportError:  # pragma: no cover - databricks-sdk is a dependency
        raise ConfigurationError(
            "databricks-sdk is not installed; pass token= explicitly"
        ) from None
    secrets = {}
    for attribute, variable in _SDK_SECRET_ENV:
        value = os.environ.get(variable)
        if value is not None:
            cleaned = clean_secret(value, f"the {variable} environment variable")
            if cleaned != value:
                secrets[attribute] = cleaned
    try:
        config = Config(**settings, **secrets)
    except Exception as exc:
        raise ConfigurationError(
            f"no Databricks credentials found ({exc}). Pass host= and token=, set "
            "DATABRICKS_HOST and DATABRICKS_TOKEN, or configure a profile in ~/.databrickscfg "
            "(DATABRICKS_CONFIG_PROFILE)"
        ) from None
    for attribute, _ in _SDK_SECRET_ENV:
        value = getattr(config, attribute, None)
        if isinstance(value, str):
            clean_secret(value, f"{attribute} of {_sdk_source(config)}")
    return config
