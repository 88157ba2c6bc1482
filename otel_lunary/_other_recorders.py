"""Whether something other than ``lunary.monitor`` already records an OpenAI chat call.

One LLM call must give one LLM span: two double the tokens in every backend and show an
LLM call inside an LLM call. Two kinds of recorder are recognised, at call time (an
instrumentation can be switched on or off after ``monitor()``):

- an instrumentation of the ``openai`` package, found by the wrapt wrappers it installs
  on ``Completions.create`` (openai-v2, OpenLLMetry) or on the client's ``request``
  (OpenInference), named after the module its wrapper comes from;
- an LLM span of another instrumentation around the call (LangChain's ``ChatOpenAI``
  span from openinference-instrumentation-langchain around a monitored client).

``OTEL_LUNARY_MONITOR_SPANS`` (or ``monitor(client, spans=...)``, read by ``_settings``) decides what monitor
does about it: ``auto`` defers to the other recorder, ``always`` records anyway,
``never`` never records a span of its own.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, NamedTuple

from opentelemetry.trace import Span, get_current_span

from otel_lunary._settings import MONITOR_SPANS_ENV
from otel_lunary.attributes import (
    GEN_AI_OPERATION_NAME,
    OPENINFERENCE_SPAN_KIND,
    GenAiOperationNameValues,
    OpeninferenceSpanKindValues,
)

_logger = logging.getLogger("otel_lunary")

# Package of a wrapper's module -> the instrumentation that installs it.
_KNOWN_WRAPPERS = (
    ("opentelemetry.instrumentation.openai_v2", "opentelemetry-instrumentation-openai-v2"),
    ("opentelemetry.instrumentation.openai", "opentelemetry-instrumentation-openai (OpenLLMetry)"),
    ("openinference.instrumentation.openai", "openinference-instrumentation-openai"),
)
_MAX_WRAPPER_DEPTH = 8  # wrappers of wrappers; a cycle cannot loop forever

_INSTRUMENTATION_SCOPE = "otel_lunary"
_CHAT = GenAiOperationNameValues.CHAT.value
_LLM = OpeninferenceSpanKindValues.LLM.value

_warned: set[str] = set()
_warned_lock = threading.Lock()


def _wrapper_packages(function: Any) -> list[str]:
    """The known instrumentations among the wrapt wrappers around ``function``."""
    found: list[str] = []
    for _ in range(_MAX_WRAPPER_DEPTH):
        wrapper = getattr(function, "_self_wrapper", None)
        if wrapper is None:
            break
        module = getattr(wrapper, "__module__", None) or type(wrapper).__module__
        if not isinstance(module, str) or module == "builtins":
            module = type(wrapper).__module__
        for prefix, package in _KNOWN_WRAPPERS:
            if module == prefix or module.startswith(prefix + "."):
                found.append(package)
                break
        function = getattr(function, "__wrapped__", None)
    return found


def instrumentations_of(completions: Any) -> list[str]:
    """The instrumentations that record calls of this ``client.chat.completions``."""
    client = getattr(completions, "_client", None)
    return _wrapper_packages(getattr(type(completions), "create", None)) + _wrapper_packages(getattr(type(client), "request", None))


class OtherRecorder(NamedTuple):
    name: str  # for the log line
    enclosing: Span | None  # the other LLM span the call runs in, when that is how it is recorded


def _enclosing_llm_span() -> OtherRecorder | None:
    span = get_current_span()
    if not span.is_recording():
        return None
    attributes = getattr(span, "attributes", None) or {}
    if attributes.get(GEN_AI_OPERATION_NAME) != _CHAT and attributes.get(OPENINFERENCE_SPAN_KIND) != _LLM:
        return None
    scope = getattr(getattr(span, "instrumentation_scope", None), "name", None) or "another instrumentation"
    return None if scope == _INSTRUMENTATION_SCOPE else OtherRecorder(f"an enclosing LLM span ({scope})", span)


def other_recorder(completions: Any) -> OtherRecorder | None:
    """What else records this call of ``client.chat.completions``, or None."""
    found = instrumentations_of(completions)
    if found:
        return OtherRecorder(", ".join(dict.fromkeys(found)), None)
    return _enclosing_llm_span()


def warn_deferring_once(recorder: str) -> None:
    with _warned_lock:
        if recorder in _warned:
            return
        _warned.add(recorder)
    _logger.warning(
        "otel-lunary: OpenAI chat calls are already recorded by %s; lunary.monitor adds the conversation to that span "
        "and records none of its own (%s=always records both)",
        recorder,
        MONITOR_SPANS_ENV,
    )
