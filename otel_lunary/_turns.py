"""Open turns: the turn spans this process started and has not ended yet.

A turn span starts at the user message and must end when the turn is answered
(conventions/README.md, decision 2). Only the process that started a span can end it, so
this module keeps, per thread id, the thread's current turn (answered or not, so replies,
events and feedback still find its trace) and ends the open ones on every way a turn can
end: the reply, the thread's next user message, the turn timeout (a daemon thread, so an
idle server still exports its unanswered turns), ``flush``/``shutdown``/exit, and
eviction when more than ``MAX_TURNS`` threads are remembered.

It also holds the system messages a thread tracks before its first user message here,
so they can be recorded inside that first turn rather than as a turn of their own. The
turn's trace and span ids are drawn when the first one is held, so each held message has
its final traceparent as soon as it is tracked; held ones are recorded on their own
(same ids) when the turn timeout passes, or at flush and shutdown.

Spans are ended outside the lock (ending runs the span processors, which may export).
"""

from __future__ import annotations

import atexit
import math
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Span, SpanContext

from otel_lunary.attributes import LUNARY_TURN_ENDED_BY, LunaryTurnEndedByValues

MAX_TURNS = 10_000
MAX_HELD_PER_THREAD = 16
DEFAULT_TURN_TIMEOUT_S = 300.0

_Ended = LunaryTurnEndedByValues
REPLY = _Ended.REPLY.value
NEXT_MESSAGE = _Ended.NEXT_MESSAGE.value
TIMEOUT = _Ended.TIMEOUT.value
FLUSH = _Ended.FLUSH.value
SHUTDOWN = _Ended.SHUTDOWN.value
EVICTED = _Ended.EVICTED.value

monotonic = time.monotonic
time_ns = time.time_ns

# Records a held message: given the parent context (the turn's, or None: on its own), it emits.
Release = Callable[[Context | None], None]


class Reservation:
    """The ids of a thread's next turn span, drawn when its first message was held."""

    __slots__ = ("trace_id", "span_id", "held")

    def __init__(self, trace_id: int, span_id: int) -> None:
        self.trace_id = trace_id
        self.span_id = span_id
        self.held: list[tuple[float, Release]] = []


class Turn:
    """One turn of one thread: its span while open, its context for ever after."""

    __slots__ = ("span", "span_context", "context", "thread_id", "deadline")

    def __init__(self, span: Span, context: Context, thread_id: str, deadline: float) -> None:
        self.span: Span | None = span  # None once ended
        self.span_context: SpanContext = span.get_span_context()
        self.context = context
        self.thread_id = thread_id
        self.deadline = deadline

    @property
    def open(self) -> bool:
        return self.span is not None


def _end(span: Span, ended_by: str, attributes: dict[str, Any] | None, end_ns: int | None) -> None:
    try:
        if attributes:  # the caller's fresh dict: one call to the span, not two
            attributes[LUNARY_TURN_ENDED_BY] = ended_by
            span.set_attributes(attributes)
        else:
            span.set_attribute(LUNARY_TURN_ENDED_BY, ended_by)
        span.end(end_time=end_ns)
    except Exception:  # noqa: BLE001 - a span processor's failure must not reach the app
        from otel_lunary import _health

        _health.report("internal_errors", "otel_lunary: ending a turn span failed", exc_info=True)


class TurnRegistry:
    """The current turn of each thread (LRU-bounded) and the messages held for a first turn."""

    def __init__(self, capacity: int = MAX_TURNS) -> None:
        self._capacity = capacity
        self._turns: OrderedDict[str, Turn] = OrderedDict()
        self._held: dict[str, Reservation] = {}
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._sweeper: threading.Thread | None = None
        # The time by which the sweeper looks at the deadlines again (inf: when notified).
        # Only a deadline before it needs a notify; turns opened with one timeout come due
        # in the order they opened, so a new turn almost never wakes the sweeper.
        self._wake_at = math.inf
        if hasattr(os, "register_at_fork"):
            # A forked child has no sweeper (and maybe a lock held by a thread it lacks).
            this = weakref.ref(self)

            def after_fork() -> None:
                alive = this()
                if alive is not None:
                    alive._after_fork()

            os.register_at_fork(after_in_child=after_fork)

    # --- lookups ---------------------------------------------------------------------------

    def current(self, thread_id: str) -> Turn | None:
        """The thread's current turn in this process, open or answered; one dict lookup."""
        return self._turns.get(thread_id)

    # --- the turn's life -------------------------------------------------------------------

    def take_held(self, thread_id: str) -> Reservation | None:
        """The reservation of the thread's next turn and what it holds (the caller starts the
        turn span with its ids, then records the held messages in it)."""
        if thread_id not in self._held:  # the usual case, answered without the lock: a
            return None  # message held concurrently is as late as one held just after
        with self._lock:
            return self._held.pop(thread_id, None)

    def open(self, thread_id: str, span: Span, context: Context, timeout_s: float, start_ns: int | None = None) -> Turn:
        """Make ``span`` the thread's current turn (started at ``start_ns``, if the caller
        knows). The thread's previous turn, if still open, ends then, unanswered
        (``next_message``)."""
        turn = Turn(span, context, thread_id, monotonic() + timeout_s)
        unanswered: Span | None = None
        evicted: list[Span] = []
        turns = self._turns
        with self._lock:
            previous = turns.pop(thread_id, None)
            if previous is not None:
                unanswered, previous.span = previous.span, None
            turns[thread_id] = turn
            while len(turns) > self._capacity:
                _, old = turns.popitem(last=False)
                if old.span is not None:
                    evicted.append(old.span)
                    old.span = None
            if turn.deadline < self._wake_at:
                self._schedule(turn.deadline)
        # ended outside the lock; taken from their turns under it, so each ends once
        if unanswered is not None:
            _end(unanswered, NEXT_MESSAGE, None, _start_ns(span) if start_ns is None else start_ns)
        for old_span in evicted:
            _end(old_span, EVICTED, None, None)
        return turn

    def answer(self, thread_id: str, trace_id: int, attributes: dict[str, Any], end_ns: int) -> bool:
        """End the thread's open turn with its reply, when the reply is in the turn's trace."""
        with self._lock:
            turn = self._turns.get(thread_id)
            if turn is None or turn.span is None or turn.span_context.trace_id != trace_id:
                return False
            span, turn.span = turn.span, None
        _end(span, REPLY, attributes, end_ns)
        return True

    def hold(
        self, thread_id: str, ids: IdGenerator, make: Callable[[int, int], tuple[Release, str]], timeout_s: float
    ) -> str | None:
        """Keep a message for the thread's first turn; its id, or None (not held) when the
        thread already has a turn here or holds ``MAX_HELD_PER_THREAD`` messages.

        ``make(trace_id, turn_span_id)`` gets the ids reserved for that turn and returns
        the function recording the message and the message's id (cheap: runs under the lock).
        """
        with self._lock:
            if thread_id in self._turns:
                return None
            reservation = self._held.get(thread_id)
            if reservation is None:
                reservation = self._held[thread_id] = Reservation(ids.generate_trace_id(), ids.generate_span_id())
            if len(reservation.held) >= MAX_HELD_PER_THREAD:
                return None
            release, message_id = make(reservation.trace_id, reservation.span_id)
            deadline = monotonic() + timeout_s
            reservation.held.append((deadline, release))
            self._schedule(deadline)
        return message_id

    def end_all(self, ended_by: str) -> None:
        """End every open turn and record every held message (flush, shutdown, exit)."""
        with self._lock:
            ending = [turn for turn in self._turns.values() if turn.span is not None]
            held = [release for reservation in self._held.values() for _, release in reservation.held]
            self._held.clear()
        for release in held:
            _release(release, None)
        for turn in ending:
            self._finish(turn, ended_by, None, None)

    def clear(self) -> None:
        """Forget every turn (after ``end_all``: shutdown)."""
        with self._lock:
            self._turns.clear()
            self._held.clear()

    def _finish(self, turn: Turn, ended_by: str, attributes: dict[str, Any] | None, end_ns: int | None) -> None:
        with self._lock:
            span, turn.span = turn.span, None
        if span is not None:
            _end(span, ended_by, attributes, end_ns)

    # --- the timeout -----------------------------------------------------------------------

    def _schedule(self, deadline: float) -> None:
        """Under the lock: have the sweeper look again by ``deadline`` (starting it if this
        process has none)."""
        if deadline < self._wake_at:
            self._wake_at = deadline
            if self._sweeper is None:
                self._sweeper = threading.Thread(target=self._sweep_forever, name="otel-lunary-turns", daemon=True)
                self._sweeper.start()
            else:
                self._wake.notify()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._sweeper = None
        self._wake_at = math.inf

    def sweep(self, now: float | None = None) -> float | None:
        """End the turns and release the held messages whose time is up; returns the next deadline."""
        now = monotonic() if now is None else now
        overdue: list[Turn] = []
        released: list[Release] = []
        upcoming: list[float] = []
        with self._lock:
            for turn in self._turns.values():
                if turn.span is None:
                    continue
                if turn.deadline <= now:
                    overdue.append(turn)
                else:
                    upcoming.append(turn.deadline)
            for thread_id, reservation in list(self._held.items()):
                keep = []
                for deadline, release in reservation.held:
                    if deadline <= now:
                        released.append(release)
                    else:
                        keep.append((deadline, release))
                        upcoming.append(deadline)
                if keep:
                    reservation.held = keep
                else:
                    del self._held[thread_id]
        for release in released:
            _release(release, None)
        for turn in overdue:
            self._finish(turn, TIMEOUT, None, None)
        return min(upcoming) if upcoming else None

    def _sweep_forever(self) -> None:
        try:
            while True:
                with self._lock:
                    self._wake_at = math.inf  # deadlines scheduled from now on lower it
                try:
                    next_deadline = self.sweep()
                except Exception:  # noqa: BLE001 - the daemon must survive anything
                    next_deadline = monotonic() + 1.0
                with self._lock:
                    if next_deadline is not None and next_deadline < self._wake_at:
                        self._wake_at = next_deadline
                    wake_at = self._wake_at
                    self._wake.wait(None if wake_at == math.inf else max(0.0, wake_at - monotonic()))
        finally:
            with self._lock:
                if self._sweeper is threading.current_thread():  # the next deadline starts another
                    self._sweeper = None
                    self._wake_at = math.inf


def _start_ns(span: Span) -> int | None:
    start = getattr(span, "start_time", None)
    return start if isinstance(start, int) else None


def _release(release: Release, parent: Context | None) -> None:
    try:
        release(parent)
    except Exception:  # noqa: BLE001 - recording a held message must not reach the app
        from otel_lunary import _health

        _health.report("internal_errors", "otel_lunary: recording a held message failed", exc_info=True)


registry = TurnRegistry()


@atexit.register
def _end_turns_at_exit() -> None:
    """Open turns end before the exporters' own exit hooks (registered earlier, run later)."""
    registry.end_all(SHUTDOWN)
