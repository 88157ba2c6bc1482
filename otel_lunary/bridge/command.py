"""``otel-lunary bridge``: run the Lunary ingestion bridge in the foreground."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from otel_lunary import export
from otel_lunary.bridge.config import ENV_KEYS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Accept the Lunary SDKs' POST /v1/runs/ingest and emit OpenTelemetry spans (docs/bridge.md)."
    parser.add_argument("--keys", help=f"app keys and their projects, key=project,... (default ${ENV_KEYS})")
    parser.add_argument("--host", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port (default 8077; 0 picks a free one)")
    parser.add_argument("--cors-origins", help="allowed browser origins, comma-separated, or * (default *)")
    parser.add_argument("--state", dest="state_path", help="SQLite state file (default ./otel-lunary-bridge.sqlite)")
    parser.add_argument("--state-ttl", dest="state_ttl_s", type=float, help="seconds run ids are remembered (default 604800)")
    parser.add_argument("--state-max-rows", type=int, help="rows kept per state table (default 1000000)")
    parser.add_argument("--run-timeout", dest="run_timeout_s", type=float, help="seconds before a run with no end is closed as unfinished (default 600)")
    parser.add_argument("--max-body", dest="max_body_bytes", type=int, help="request body limit in bytes (default 5 MiB)")
    parser.add_argument("--max-events", type=int, help="events per request (default 10000)")
    parser.add_argument("--max-connections", type=int, help="open connections; requests above it get 503 (default 1000)")
    parser.add_argument("--max-pending", type=int, help="spans waiting for the exporter; at the bound requests get 503 (default 1000000)")
    parser.add_argument("--state-busy-timeout", dest="state_busy_timeout_s", type=float,
                        help="seconds to wait for the state file's write lock before answering 503 (default 5)")
    parser.add_argument("--exporter", help="otlp, file, console, none, or several (default: otel_lunary.export's rules)")
    parser.add_argument("--endpoint", help="OTLP endpoint (default: OTEL_EXPORTER_OTLP_ENDPOINT)")
    parser.add_argument("--file", dest="file_path", help="file exporter path (default: OTEL_LUNARY_FILE_PATH)")
    parser.add_argument("--service-name", help="service.name of the bridge's spans (default: OTEL_SERVICE_NAME)")
    parser.add_argument("--url-file", help="write the bridge's base URL here once it listens")


def run(args: argparse.Namespace) -> int:
    try:
        from otel_lunary.bridge import Bridge, StoreUnusable, resolve_config
    except ImportError as missing:
        print(f"otel-lunary bridge needs the bridge extra: pip install 'otel-lunary[bridge]' ({missing})", file=sys.stderr)
        return 2

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = resolve_config(
            keys=args.keys,
            host=args.host,
            port=args.port,
            cors_origins=args.cors_origins,
            state_path=args.state_path,
            state_ttl_s=args.state_ttl_s,
            state_max_rows=args.state_max_rows,
            run_timeout_s=args.run_timeout_s,
            max_body_bytes=args.max_body_bytes,
            max_events=args.max_events,
            max_connections=args.max_connections,
            max_pending=args.max_pending,
            state_busy_timeout_s=args.state_busy_timeout_s,
        )
        options = export.ExportOptions(exporter=args.exporter, endpoint=args.endpoint, file_path=args.file_path, service_name=args.service_name)
        bridge = Bridge(config, export_options=options)
    except (ValueError, OSError, StoreUnusable) as problem:
        print(f"otel-lunary bridge: {problem}", file=sys.stderr)
        return 2

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    projects = ", ".join(sorted(set(config.keys.values())))
    try:
        bridge.start()
        print(f"otel-lunary bridge listening on {bridge.url} (projects: {projects}; state: {config.state_path})", flush=True)
        if args.url_file:
            with open(args.url_file, "w", encoding="utf-8") as handle:
                handle.write(bridge.url + "\n")
        bridge.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        bridge.close()
    return 0
