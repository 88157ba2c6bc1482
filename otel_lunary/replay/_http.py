"""One GET for the remote sources (Jaeger, Phoenix), bounded by a total deadline.

urllib's ``timeout`` bounds each socket read, so a server sending a byte every few
seconds could hold replay for ever; here the body is read in chunks and the deadline is
checked after each, and the whole read of a source shares one deadline
(``OTEL_LUNARY_REPLAY_TIMEOUT`` seconds, 30 by default). A request starts with the time
left as its socket timeout, so a source takes at most twice the setting. Every failure is a
``SourceError`` whose message says what went wrong, for the ``Problem`` the source reports.
"""

from __future__ import annotations

import socket
import time

from otel_lunary._settings import command_setting

ENV_TIMEOUT = "OTEL_LUNARY_REPLAY_TIMEOUT"
DEFAULT_TIMEOUT_S = 30.0
MAX_ANSWER_BYTES = 1 << 30  # an answer larger than this is not read


class SourceError(Exception):
    """A remote source could not be read; the message says why."""


class NotFound(SourceError):
    """HTTP 404 (Jaeger's answer when no trace matched)."""


class Unreachable(SourceError):
    """No connection (refused, no route, name not resolved)."""


def timeout_s(value: float | None = None) -> float:
    """The total time to read one remote source: ``value``, else ``OTEL_LUNARY_REPLAY_TIMEOUT``, else 30 s."""
    return float(command_setting(float, value, ENV_TIMEOUT, DEFAULT_TIMEOUT_S, "the remote source timeout in seconds"))


def get(url: str, deadline: float, headers: dict[str, str] | None = None) -> bytes:
    """The body of ``GET url``, read before ``deadline`` (``time.monotonic()``), or ``SourceError``."""
    import urllib.error  # here, not at the top: replaying a file need not load an HTTP client
    import urllib.request

    left = deadline - time.monotonic()
    if left <= 0:
        raise SourceError("deadline passed before the request")
    request = urllib.request.Request(url, headers={"Accept": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=left) as response:
            chunks = []
            size = 0
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SourceError(f"no complete answer within the deadline ({ENV_TIMEOUT})")
                chunk = response.read1(1 << 16)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise SourceError(f"answer larger than {MAX_ANSWER_BYTES} bytes")
                chunks.append(chunk)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise NotFound("HTTP 404") from None
        raise SourceError(f"HTTP {exc.code}: {exc.read(200)!r}") from None
    except (socket.timeout, TimeoutError):
        raise SourceError(f"no complete answer within the deadline ({ENV_TIMEOUT})") from None
    except (urllib.error.URLError, OSError) as exc:
        raise Unreachable(str(getattr(exc, "reason", exc))) from None
    body = b"".join(chunks)
    if not body.strip():
        raise SourceError("empty answer")
    return body
