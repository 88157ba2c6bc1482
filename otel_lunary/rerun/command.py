"""``otel-lunary rerun``: redo recorded conversations against a model and compare.

Selection is replay's (sources and filters), so "the conversations that got a
thumbs-down last week" is the same expression in both commands. Exit status: 0 done,
1 a ``--fail-on`` condition held or no source could be read, 2 usage error, 130
interrupted (Ctrl-C; the report still covers what was done).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from opentelemetry.trace import TracerProvider

from otel_lunary.replay import Conversation
from otel_lunary.replay.command import ProblemReport, filters_of, read_conversations, run_to_output, sources_of
from otel_lunary.rerun import render_html, render_json, render_terminal
from otel_lunary.rerun.progress import RerunProgress
from otel_lunary.rerun.recording import install_links, is_rerun
from otel_lunary.rerun.results import RerunReport
from otel_lunary.rerun.runner import RerunSettings, Runner
from otel_lunary.rerun.turns import split_turns

FORMATS = ("terminal", "json", "html")
FAIL_ON = ("changed", "errors")
EXIT_INTERRUPTED = 130
DEFAULT_RETRIES = 2
DEFAULT_TIMEOUT_S = 120.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Send recorded conversations to a model again (any OpenAI-compatible endpoint: OPENAI_BASE_URL, OPENAI_API_KEY) "
        "and compare each new reply with the recorded one. The rerun is recorded as a new thread linked to the original."
    )
    source = parser.add_argument_group("what to rerun (as in otel-lunary replay)")
    source.add_argument("sources", nargs="*", metavar="SOURCE", help="OTLP JSON Lines files or directories. Default: $OTEL_LUNARY_FILE_PATH or ./otel-lunary-traces.jsonl")
    source.add_argument("--jaeger", metavar="URL", help="read from a Jaeger v2 query service")
    source.add_argument("--jaeger-service", metavar="NAME", help="service name for the Jaeger search")
    source.add_argument("--phoenix", metavar="URL", help="read from a Phoenix server")
    source.add_argument("--project", default="default", help="Phoenix project (default: %(default)s)")
    source.add_argument("--conversation", "-c", action="append", default=[], metavar="ID", help="only this conversation (repeatable)")
    source.add_argument("--user", action="append", default=[], metavar="ID", help="only threads with this user (repeatable)")
    source.add_argument("--tag", action="append", default=[], metavar="TAG", help="only threads with this tag (repeatable)")
    source.add_argument("--feedback", action="append", default=[], metavar="KEY[=VALUE]", help="only threads where a message's latest feedback has KEY (=VALUE), e.g. thumb=down")
    source.add_argument("--since", metavar="TIME", help="only threads active at or after TIME (ISO 8601, or 30m, 2h, 7d ago)")
    source.add_argument("--until", metavar="TIME", help="only threads that started before TIME")
    source.add_argument("--limit", type=int, metavar="N", help="at most the N most recent matching conversations")
    source.add_argument("--include-reruns", action="store_true", help="also rerun threads that are themselves reruns (left out unless named with -c)")
    target = parser.add_argument_group("what to rerun with")
    target.add_argument("--model", help="model to ask (default: the model each recording used)")
    target.add_argument("--system-prompt", metavar="FILE", help="replace the recorded system prompt with this file's text")
    target.add_argument("--temperature", type=float, help="sampling temperature to send")
    target.add_argument("--tools", metavar="FILE", help="JSON list of OpenAI tool definitions to offer (default: the recorded tools, parameters inferred from their calls)")
    target.add_argument("--regenerated", action="store_true", help="build each turn's history from the new replies instead of the recorded ones")
    target.add_argument("--base-url", help="endpoint (default: $OPENAI_BASE_URL, else OpenAI's)")
    target.add_argument("--concurrency", type=int, default=4, metavar="N", help="conversations rerun at once (default: %(default)s)")
    target.add_argument("--retries", type=int, default=DEFAULT_RETRIES, metavar="N", help="retries with backoff on 408/409/429/5xx and connection errors (default: %(default)s)")
    target.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS", help="per request (default: %(default)s)")
    target.add_argument("--no-record", action="store_true", help="do not record the rerun as a thread")
    output = parser.add_argument_group("output")
    output.add_argument("--format", "-f", choices=FORMATS, default="terminal", help="report format (default: %(default)s)")
    output.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    output.add_argument("--fail-on", action="append", default=[], choices=FAIL_ON, help="exit 1 when a turn changed (changed; a turn that could not be rerun counts too) or a conversation failed (errors)")


def _settings(args: argparse.Namespace) -> RerunSettings:
    """The rerun settings from the arguments; ValueError with the reason on a bad one."""
    system_prompt = None
    if args.system_prompt:
        try:
            system_prompt = Path(args.system_prompt).read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"--system-prompt: cannot read {args.system_prompt}: {exc.strerror}") from None
    tools = None
    if args.tools:
        try:
            tools = json.loads(Path(args.tools).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"--tools: cannot read {args.tools}: {exc.strerror}") from None
        except ValueError as exc:
            raise ValueError(f"--tools: {args.tools} is not JSON: {exc}") from None
        if not isinstance(tools, list) or not all(isinstance(tool, dict) for tool in tools):
            raise ValueError(f"--tools: {args.tools} must hold a JSON list of tool definitions")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    if args.retries < 0:
        raise ValueError(f"--retries must be 0 or more, got {args.retries}")
    if args.timeout <= 0:
        raise ValueError(f"--timeout must be positive, got {args.timeout}")
    return RerunSettings(
        model=args.model,
        system_prompt=system_prompt,
        temperature=args.temperature,
        tools=tools,
        history="regenerated" if args.regenerated else "recorded",
        concurrency=args.concurrency,
        record=not args.no_record,
    )


def select(args: argparse.Namespace, err: TextIO) -> list[Conversation] | None:
    """The conversations to rerun, oldest first; None when no source could be read."""
    sources = sources_of(args)
    report = ProblemReport(err, "rerun")
    conversations, spans_read = read_conversations(sources, filters_of(args), report)
    if report.unreadable_sources == len(sources) and spans_read == 0:
        return None
    if not args.include_reruns:
        named = set(args.conversation)
        conversations = [c for c in conversations if c.id in named or not is_rerun(c.metadata)]
    conversations = [c for c in conversations if split_turns(c)]
    conversations.sort(key=lambda c: c.start_ns)
    if args.limit is not None:
        conversations = conversations[-args.limit:]
    return conversations


def _client(args: argparse.Namespace) -> Any:
    import openai

    return openai.AsyncOpenAI(base_url=args.base_url or None, max_retries=args.retries, timeout=args.timeout)


async def _run(runner: Runner, conversations: list[Conversation]) -> RerunReport:
    """Run with Ctrl-C wired to ``runner.interrupt``: the first one stops and keeps the
    report, a second one is Python's usual KeyboardInterrupt."""
    loop = asyncio.get_running_loop()
    handled = False
    if threading.current_thread() is threading.main_thread():
        try:
            loop.add_signal_handler(signal.SIGINT, _once(loop, runner.interrupt))
            handled = True
        except (NotImplementedError, RuntimeError):  # no signal handlers on this loop (Windows)
            pass
    try:
        return await runner.run(conversations)
    finally:
        if handled:
            loop.remove_signal_handler(signal.SIGINT)


def _once(loop: asyncio.AbstractEventLoop, action: Callable[[], None]) -> Callable[[], None]:
    def handler() -> None:
        loop.remove_signal_handler(signal.SIGINT)  # the next Ctrl-C is KeyboardInterrupt
        action()

    return handler


def rerun(args: argparse.Namespace, out: TextIO, err: TextIO, *, provider: TracerProvider | None = None) -> int:
    """The command body, with streams passed in so tests and scripts can call it.

    ``provider`` is the TracerProvider otel-lunary records with (what ``lunary.configure``
    returned); None sets otel-lunary up from the environment, as any application's first
    tracking call would.
    """
    try:
        settings = _settings(args)
        conversations = select(args, err)
    except ValueError as exc:
        err.write(f"otel-lunary rerun: {exc}\n")
        return 2
    if conversations is None:
        if not args.sources and not args.jaeger and not args.phoenix:
            err.write("otel-lunary rerun: nothing recorded yet here; run `otel-lunary demo`, or pass a SOURCE file, --jaeger or --phoenix\n")
        return 1
    if not conversations:
        err.write("otel-lunary rerun: no conversation with an assistant reply matched\n")
    try:
        client = _client(args)
    except ImportError:
        err.write("otel-lunary rerun needs the openai package: pip install 'otel-lunary[openai]'\n")
        return 2
    except Exception as exc:  # noqa: BLE001 - openai.OpenAIError (no key) and friends: a usage problem
        err.write(f"otel-lunary rerun: {exc}\n")
        return 2
    if settings.record:
        import otel_lunary as lunary

        if not install_links(provider if provider is not None else lunary.configure()):
            err.write("otel-lunary rerun: the TracerProvider in use takes no span processor; the rerun is recorded without links to the originals\n")
    progress = RerunProgress(err, sum(len(split_turns(c)) for c in conversations), len(conversations))
    runner = Runner(client, settings, retries=args.retries, on_progress=progress)
    try:
        report = asyncio.run(_run(runner, conversations))
    finally:
        progress.close()
    _render(args, report, out)
    if args.format != "terminal" or args.output:
        err.write(report.summary() + "\n")
    return exit_status(report, args.fail_on)


def _render(args: argparse.Namespace, report: RerunReport, out: TextIO) -> None:
    renderers = {"terminal": render_terminal.render, "json": render_json.render, "html": render_html.render}
    renderers[args.format](report, out)


def exit_status(report: RerunReport, fail_on: list[str]) -> int:
    """130 when interrupted; 1 when a ``--fail-on`` condition holds; else 0."""
    if report.interrupted:
        return EXIT_INTERRUPTED
    if "errors" in fail_on and (report.failed_conversations or report.count("error")):
        return 1
    if "changed" in fail_on and (report.count("changed") or report.count("error") or report.not_run_turns):
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    import otel_lunary as lunary

    try:
        return _run_to(args)
    except KeyboardInterrupt:  # while reading the sources, or a second Ctrl-C during the run
        sys.stderr.write("otel-lunary rerun: interrupted\n")
        return EXIT_INTERRUPTED
    finally:
        lunary.shutdown()


def _run_to(args: argparse.Namespace) -> int:
    """``rerun`` writing to ``-o FILE`` or stdout."""
    return run_to_output(rerun, args, "rerun", wrote=(0, 1, EXIT_INTERRUPTED))
