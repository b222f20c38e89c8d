"""Typed readers for environment variables that fail loudly on bad values.

A typo such as MAX_UPLOAD_BYTES=20MB must stop the process at start with the variable's
name in the message, not surface later as a confusing error or a silent default.
"""

import os
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name):
    value = os.environ.get(name)
    return None if value is None else value.strip()


def env_str(name, default=None):
    value = _raw(name)
    return default if value in (None, "") else value


def env_bool(name, default=False):
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false)")


def env_int(name, default, minimum=None, maximum=None):
    value = _raw(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below its minimum {minimum}")
    if maximum is not None and number > maximum:
        raise ImproperlyConfigured(f"{name}={number} is above its maximum {maximum}")
    return number


def env_list(name, default=()):
    value = _raw(name)
    # Empty means unset, as for the other readers: compose files turn an undefined
    # ${ALLOWED_HOSTS} into "", which must not silently mean "no hosts at all".
    if not value:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]


def env_int_list(name, default, minimum=None, maximum=None):
    """Comma-separated integers, e.g. WEBHOOK_RETRY_DELAYS=5,300,1800."""
    items = env_list(name, [])
    if not items:
        return list(default)
    numbers = []
    for item in items:
        try:
            numbers.append(int(item))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an integer") from None
        if minimum is not None and numbers[-1] < minimum:
            raise ImproperlyConfigured(f"{name}: {numbers[-1]} is below its minimum {minimum}")
        if maximum is not None and numbers[-1] > maximum:
            raise ImproperlyConfigured(f"{name}: {numbers[-1]} is above its maximum {maximum}")
    return numbers


def env_host_port_list(name):
    """Comma-separated `host:port` entries (`[::1]:9000` for IPv6), lowercased, e.g.
    WEBHOOK_ALLOWED_HOSTS=127.0.0.1:9000. A bare host is refused: an entry that meant every
    port of a host would open its database and admin ports too."""
    entries = []
    for item in env_list(name, []):
        host, _, port = item.rpartition(":")
        if host.startswith("[") != host.endswith("]") or (":" in host and not host.startswith("[")):
            host = ""  # an IPv6 address without brackets: which colon starts the port?
        if not host.strip("[]") or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not host:port (one port per entry, e.g. 127.0.0.1:9000 or [::1]:9000)"
            )
        entries.append(f"{host.lower()}:{int(port)}")
    return entries


def env_origin_list(name):
    """Comma-separated web origins, `scheme://host[:port]` each, e.g.
    CORS_ALLOWED_ORIGINS=https://app.example.com,http://localhost:5173. A path, a trailing
    slash or a wildcard is refused: browsers send the origin alone, so it would never match."""
    origins = []
    for item in env_list(name, []):
        parts = urlsplit(item)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or item != f"{parts.scheme}://{parts.netloc}"
        ):
            raise ImproperlyConfigured(
                f"{name}: {item!r} is not an origin (scheme://host[:port], e.g. https://app.example.com)"
            )
        origins.append(item.lower())
    return origins


def env_path(name, default):
    return Path(env_str(name, str(default))).expanduser().resolve()
