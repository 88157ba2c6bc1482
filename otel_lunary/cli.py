"""The ``otel-lunary`` command: one subcommand per feature, each in its own module.

Subcommand modules are imported only when chosen, so ``otel-lunary replay`` does not pay
for the bridge's imports and a broken optional part cannot break the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> (module, help). Each module has add_arguments(parser) and run(args) -> int.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("otel_lunary.demo", "record a scripted conversation into the local file and replay it"),
    "replay": ("otel_lunary.replay.command", "rebuild conversations from OTLP data"),
    "bridge": ("otel_lunary.bridge.command", "accept the Lunary SDKs' ingestion traffic and emit spans"),
    "rerun": ("otel_lunary.rerun.command", "send recorded conversations to a model again and compare the replies"),
    "annotate": ("otel_lunary.phoenix_backfill", "write recorded user feedback into Phoenix as annotations"),
}


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="otel-lunary", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text)
        if name == chosen:
            importlib.import_module(module).add_arguments(sub_parser)
            sub_parser.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(args_list).parse_args(args_list)
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
