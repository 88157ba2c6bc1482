"""The ``requests`` session otel-lunary's OTLP/HTTP exporter posts with: the stock one,
minus re-reading an unchanged environment on every request.

The stock OTLP/HTTP exporter posts each batch through a ``requests.Session``, and
``Session.request`` calls ``merge_environment_settings`` every time: the proxies from
``*_PROXY``/``NO_PROXY`` (``urllib.request.getproxies``, which walks all of
``os.environ`` twice, decoding every name and value, and ``proxy_bypass``, which walks it
twice more) and the CA bundle from ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``. With ~40
environment variables that is ~85 µs of a ~450 µs POST (a Kubernetes pod, with a few
variables per service, has hundreds); docs/performance.md.

``EnvironmentCachingSession`` is a ``requests.Session`` whose ``merge_environment_settings``
returns what requests' own returned for the same arguments, session settings and
environment, computing it again only when one of them changed: the environment is
compared with a copy of ``os.environ``'s own dict (one C-level comparison, ~0.2 µs). So
a proxy or CA bundle set, changed or removed at run time applies from the next request,
exactly as with the stock session (tests/test_otlp_exporters.py: requests through a real
proxy as the variables change, and the settings compared with requests' own). Every
other part of a request (netrc, cookies, auth, TLS, retries, timeouts, headers) is
requests' code, unchanged.

It caches only where the proxy lookup reads the environment alone (not macOS or Windows,
where it also asks the system's settings) and ``os.environ`` keeps its values in a dict
(CPython); elsewhere it is exactly the stock session.
"""

from __future__ import annotations

import os
import threading
import urllib.request
from typing import Any

import requests
import requests.utils

__all__ = ["EnvironmentCachingSession", "environment_cacheable"]


def _environment_data() -> dict[Any, Any] | None:
    data = getattr(os.environ, "_data", None)
    return data if type(data) is dict else None


def environment_cacheable() -> bool:
    """Whether requests' environment settings are a function of ``os.environ`` alone here."""
    return (
        _environment_data() is not None
        and getattr(requests.utils, "getproxies", None) is getattr(urllib.request, "getproxies_environment", False)
        and getattr(requests.utils, "proxy_bypass", None) is getattr(urllib.request, "proxy_bypass_environment", False)
    )


def _items(mapping: Any) -> Any:
    """A comparable snapshot of a proxies mapping (None stays None)."""
    return None if mapping is None else tuple(mapping.items())


class EnvironmentCachingSession(requests.Session):
    """``requests.Session`` reusing its last ``merge_environment_settings`` answer while the
    arguments, the session's settings and ``os.environ`` are unchanged (see the module)."""

    # Class defaults: a session restored by pickle (requests pickles only its own
    # ``__attrs__``) has none of the instance's, and then behaves exactly as the stock one.
    _cacheable = False
    # (arguments and session settings, environment copy, proxies after the call, answer)
    _last: tuple[tuple[Any, ...], dict[Any, Any], dict[str, str] | None, dict[str, Any]] | None = None
    # Shared by all sessions: held for a dict comparison, or while requests computes an answer
    # anew (made anew in a forked child: ``_new_lock_in_child``).
    _settings_lock = threading.Lock()

    def __init__(self) -> None:
        super().__init__()
        self._cacheable = environment_cacheable()

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        environ = _environment_data()
        if not self._cacheable or not self.trust_env or environ is None:
            return super().merge_environment_settings(url, proxies, stream, verify, cert)  # type: ignore[no-any-return]
        # verify's types too: requests treats True itself apart (``is True``), and 1 or 1.0
        # equal True without being it.
        key = (url, _items(proxies), stream, verify, type(verify), cert, _items(self.proxies), self.stream, self.verify, type(self.verify), self.cert)
        with self._settings_lock:
            last = self._last
            if last is None or last[0] != key or last[1] != environ:
                snapshot = dict(environ)
                answer = super().merge_environment_settings(url, proxies, stream, verify, cert)
                last = self._last = (key, snapshot, None if proxies is None else dict(proxies), answer)
            elif proxies is not None and last[2] is not None:
                proxies.update(last[2])  # requests' call adds the environment's proxies to the caller's dict
        answer = last[3]
        # Copies: the caller may change what it gets, and the cached answer must not change.
        return {**answer, "proxies": dict(answer["proxies"])} if isinstance(answer.get("proxies"), dict) else dict(answer)


def _new_lock_in_child() -> None:
    # A fork copies the lock as it is: held by an export thread of the parent at that
    # moment, it would stay held in the child (no thread there to release it), and every
    # export the child makes would wait on it for good.
    EnvironmentCachingSession._settings_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_in_child)
