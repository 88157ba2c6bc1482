"""OTLP JSON encoders side by side: the walker otel-lunary ships and protobuf's generic mapping.

Both start from the SDK's own OTLP protobuf encoding (``encode_spans``) of the same real
message spans; the walker (``otel_lunary.export.otlp_json``) maps the message to OTLP JSON
by hand, the alternative is ``google.protobuf.json_format.MessageToDict`` plus the OTLP id
fix-up (base64 -> hex). ``protobuf_only`` is the encoding alone, what the OTLP exporters do.
Figures are spans per second, JSON text included (docs/export.md).

    python bench/encoders.py [--quick]
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import common
from helpers.otlp import json_format_dict
from spans import record_turns

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from otel_lunary.export.otlp_json import request_to_dict

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, check_circular=False).encode


def main() -> None:
    quick = "--quick" in sys.argv
    batch = record_turns(128)  # 512 spans, the BatchSpanProcessor's default batch
    rounds = 10 if quick else 40
    encoders = {
        "walker": lambda: _dumps(request_to_dict(encode_spans(batch))),
        "json_format": lambda: _dumps(json_format_dict(encode_spans(batch))),
        "protobuf_only": lambda: encode_spans(batch).SerializeToString(),
    }
    result: dict[str, Any] = {"spans": len(batch), "rounds": rounds}
    for name, encode in encoders.items():
        start = time.perf_counter()
        for _ in range(rounds):
            encode()
        result[f"{name}_spans_per_s"] = rounds * len(batch) / (time.perf_counter() - start)
    common.emit(result)


if __name__ == "__main__":
    sys.exit(main())
