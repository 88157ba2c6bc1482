"""Redo recorded turns against a model: bounded concurrency, tools answered from the recording.

Conversations run concurrently (``concurrency`` at a time); the turns of one
conversation run in order, since with ``regenerated`` history each turn's prompt holds
the earlier new answers. A failing request fails its conversation, never the others:
the error is kept with the turns done so far. Retries with backoff on 408/409/429/5xx
and connection errors are the ``openai`` client's own (``max_retries``), so they follow
``Retry-After`` the way that client does everywhere else.

Interrupting (``Runner.interrupt``, wired to Ctrl-C by the command) cancels the
conversations still running: the turns they finished are kept, the turn in flight is
dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from otel_lunary.replay.model import Conversation, Message
from otel_lunary.replay.render_openai import openai_message
from otel_lunary.rerun.recording import RerunThread
from otel_lunary.rerun.results import ConversationResult, Reply, RerunReport, ToolUse, TurnResult
from otel_lunary.rerun.turns import RecordedTools, RecordedTurn, parse_arguments, recorded_model, split_turns

History = Literal["recorded", "regenerated"]


@dataclass(frozen=True)
class RerunSettings:
    """What to rerun with; ``None`` keeps what the recording had."""

    model: str | None = None
    system_prompt: str | None = None
    temperature: float | None = None
    tools: list[dict[str, Any]] | None = None  # OpenAI tool definitions; None: inferred from the recording
    history: History = "recorded"
    concurrency: int = 4
    max_tool_rounds: int = 8
    record: bool = True

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.max_tool_rounds < 1:
            raise ValueError(f"max_tool_rounds must be at least 1, got {self.max_tool_rounds}")


class TurnFailed(Exception):
    """A turn could not be redone; the message says why, for the report."""


def describe_error(exc: BaseException, retries: int | None = None) -> str:
    """One line saying what went wrong with a request, the way a person needs it to act."""
    import openai

    retried = f" (after {retries} {'retry' if retries == 1 else 'retries'})" if retries else ""
    if isinstance(exc, openai.APITimeoutError):
        return f"request timed out{retried}"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return f"cannot reach the endpoint: {cause}{retried}"
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        detail = body.get("message") or exc.message
        code = body.get("code")
        retryable = exc.status_code in (408, 409, 429) or exc.status_code >= 500
        return f"HTTP {exc.status_code}: {detail}" + (f" ({code})" if code else "") + (retried if retryable else "")
    return f"{type(exc).__name__}: {exc}"


class Runner:
    """Reruns conversations with one ``openai`` async client (monitored when recording)."""

    def __init__(
        self,
        client: Any,
        settings: RerunSettings,
        *,
        retries: int | None = None,
        on_progress: Callable[[ConversationResult, TurnResult | None], None] | None = None,
    ) -> None:
        """``client`` is an ``openai.AsyncOpenAI``; with ``settings.record`` it is monitored
        (``lunary.monitor``), so the new LLM calls are recorded under the rerun's messages.
        ``on_progress(conversation, turn)`` is called after each turn, and with ``turn``
        None when a conversation ends (not when it is interrupted)."""
        if settings.record:
            import otel_lunary as lunary

            client = lunary.monitor(client)
        self._client = client
        self._settings = settings
        self._retries = retries
        self._on_progress = on_progress or (lambda _conversation, _turn: None)
        self._tasks: list[asyncio.Task[ConversationResult]] = []
        self._interrupted = False

    def interrupt(self) -> None:
        """Stop: cancel what is running and what has not started; finished turns are kept."""
        self._interrupted = True
        for task in self._tasks:
            task.cancel()

    async def run(self, conversations: Sequence[Conversation]) -> RerunReport:
        started = time.perf_counter()
        gate = asyncio.Semaphore(self._settings.concurrency)
        results = [ConversationResult(c.id, self._settings.model or recorded_model(c), len(split_turns(c))) for c in conversations]

        async def one(conversation: Conversation, result: ConversationResult) -> ConversationResult:
            try:
                async with gate:
                    await self._conversation(conversation, result)
            except asyncio.CancelledError:
                result.interrupted = True
                return result
            except Exception as exc:  # noqa: BLE001 - an unexpected reply shape: this conversation's error, not the run's
                result.error = f"cannot rerun: {describe_error(exc)}"
            self._on_progress(result, None)
            return result

        self._tasks = [asyncio.create_task(one(c, r)) for c, r in zip(conversations, results)]
        await asyncio.gather(*self._tasks, return_exceptions=True)
        return RerunReport(
            conversations=results,
            history=self._settings.history,
            model=self._settings.model,
            interrupted=self._interrupted,
            elapsed_s=time.perf_counter() - started,
        )

    async def _conversation(self, conversation: Conversation, result: ConversationResult) -> None:
        turns = split_turns(conversation)
        if result.model is None:
            result.error = "the recording names no model; pass --model"
            return
        settings = self._settings
        recorded_tools = RecordedTools.of(conversation)
        tools = settings.tools if settings.tools is not None else recorded_tools.openai_tools()
        thread = RerunThread(conversation.id, next(iter(conversation.users), None), result.model, settings.history) if settings.record else None
        result.rerun_conversation_id = thread.id if thread is not None else None
        regenerated: list[dict[str, Any]] = []
        # A new system prompt for a recording that had none goes first, once.
        system_missing = settings.system_prompt is not None and not any(m.role == "system" for m in conversation.messages)
        for turn in turns:
            prompt: list[tuple[dict[str, Any], str | None]] = [(self._outgoing(m), m.id) for m in turn.prompt]
            if system_missing:
                prompt.insert(0, ({"role": "system", "content": settings.system_prompt}, None))
                system_missing = False
            parent: str | None = None
            if thread is not None:
                for message, original_id in prompt:
                    parent = thread.track(message, original_id) or parent
            if settings.history == "regenerated":
                regenerated.extend(message for message, _ in prompt)
                history = list(regenerated)
            else:
                history = self._recorded_history(turn)
            turn_result = TurnResult(turn.index, turn.question, _recorded_reply(turn), feedback=turn.feedback())
            try:
                new, sent = await self._redo(turn, history, tools, recorded_tools, result.model, thread, parent)
            except TurnFailed as failure:
                turn_result.error = str(failure)
                result.turns.append(turn_result)
                result.error = f"turn {turn.index}: {failure}"
                self._on_progress(result, turn_result)
                return
            turn_result.new = new
            result.turns.append(turn_result)
            self._on_progress(result, turn_result)
            regenerated.extend(_answered(sent))

    def _outgoing(self, message: Message) -> dict[str, Any]:
        """A recorded message as sent to the model (the new system prompt replacing the recorded one)."""
        data = openai_message(message)
        if message.role == "system" and self._settings.system_prompt is not None:
            data["content"] = self._settings.system_prompt
        return data

    def _recorded_history(self, turn: RecordedTurn) -> list[dict[str, Any]]:
        history = [self._outgoing(m) for m in turn.history]
        if self._settings.system_prompt is not None and not any(m["role"] == "system" for m in history):
            history.insert(0, {"role": "system", "content": self._settings.system_prompt})
        return history

    async def _redo(
        self,
        turn: RecordedTurn,
        history: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        recorded_tools: RecordedTools,
        model: str,
        thread: RerunThread | None,
        parent: str | None,
    ) -> tuple[Reply, list[dict[str, Any]]]:
        """Ask the model until it answers without tools (or asks for one the recording lacks)."""
        import openai

        messages = list(history)
        sent: list[dict[str, Any]] = []
        reply = Reply(content=None, model=model, latency_ms=0.0)
        options: dict[str, Any] = {"model": model}
        if tools:
            options["tools"] = tools
        if self._settings.temperature is not None:
            options["temperature"] = self._settings.temperature
        if thread is not None and parent is not None:
            options["parent"] = parent  # lunary.monitor nests the LLM call under the rerun's message
        # What each new assistant message stands for: one asking for tools, the recorded
        # message that asked for tools at that round; an answer, the recorded answer.
        asked_tools = [m.id for m in turn.replies if m.role == "assistant" and m.tool_calls]
        for round_ in range(self._settings.max_tool_rounds):
            started = time.perf_counter()
            try:
                response = await self._client.chat.completions.create(messages=messages, **options)
            except openai.OpenAIError as exc:
                raise TurnFailed(describe_error(exc, self._retries)) from exc
            reply.latency_ms = (reply.latency_ms or 0.0) + (time.perf_counter() - started) * 1000
            _add_usage(reply, getattr(response, "usage", None))
            if getattr(response, "model", None):
                reply.model = response.model
            if not response.choices:
                raise TurnFailed("the endpoint answered with no choices")
            message = response.choices[0].message
            calls = list(message.tool_calls or [])
            assistant: dict[str, Any] = {"role": "assistant", "content": message.content}
            if calls:
                assistant["tool_calls"] = [
                    {"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": call.function.arguments}}
                    for call in calls
                ]
            messages.append(assistant)
            sent.append(assistant)
            if thread is not None:
                original_id = asked_tools[min(round_, len(asked_tools) - 1)] if calls and asked_tools else turn.reply.id
                reply.message_id = thread.track(assistant, original_id)
            reply.content = message.content
            if not calls:
                return reply, sent
            answers: list[dict[str, Any]] = []
            for call in calls:
                found = recorded_tools.find(call.function.name, call.function.arguments)
                reply.tool_calls.append(ToolUse(call.function.name, parse_arguments(call.function.arguments), answered=found is not None))
                if found is not None:
                    answers.append({"role": "tool", "tool_call_id": call.id, "content": found.content})
                    if thread is not None:
                        thread.track(answers[-1], found.message_id)
            if len(answers) < len(calls):
                return reply, sent  # a call the recording never made: reported, not run
            messages.extend(answers)
            sent.extend(answers)
        raise TurnFailed(f"the model still asked for tools after {self._settings.max_tool_rounds} rounds")


def _recorded_reply(turn: RecordedTurn) -> Reply:
    calls = turn.llm_calls()
    input_tokens = [c.input_tokens for c in calls if c.input_tokens is not None]
    output_tokens = [c.output_tokens for c in calls if c.output_tokens is not None]
    return Reply(
        content=turn.reply.content,
        message_id=turn.reply.id,
        tool_calls=[ToolUse(name, arguments) for name, arguments in turn.tool_calls()],
        input_tokens=sum(input_tokens) if input_tokens else None,
        output_tokens=sum(output_tokens) if output_tokens else None,
        latency_ms=sum(c.latency_ms for c in calls) if calls else None,
        model=next((c.model for c in reversed(calls) if c.model), None),
    )


def _add_usage(reply: Reply, usage: Any) -> None:
    if usage is None:
        return
    prompt, completion = getattr(usage, "prompt_tokens", None), getattr(usage, "completion_tokens", None)
    if isinstance(prompt, int):
        reply.input_tokens = (reply.input_tokens or 0) + prompt
    if isinstance(completion, int):
        reply.output_tokens = (reply.output_tokens or 0) + completion


def _answered(sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The new turn's messages as later prompts can carry them: tool calls left unanswered
    (the recording never made them) are dropped, since an endpoint rejects a history
    whose tool calls have no results."""
    answered_ids = {m.get("tool_call_id") for m in sent if m["role"] == "tool"}
    kept: list[dict[str, Any]] = []
    for message in sent:
        calls = message.get("tool_calls")
        if calls and not all(call["id"] in answered_ids for call in calls):
            if message.get("content"):
                kept.append({"role": "assistant", "content": message["content"]})
            continue
        kept.append(message)
    return kept
