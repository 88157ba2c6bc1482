"""What several test modules share, and no tests: real servers (``servers``), a running
bridge and the structural view of spans (``bridge``), load against a bridge process
(``bridge_load``), the replay command and the checks of a replayed conversation
(``replay``), the rerun command with its JSON report (``rerun``), the Collector and Jaeger built from source (``collector``), spans received
over OTLP and the recipes of docs/integrations.md (``coexist``), a small tmpfs (``tmpfs``). Test modules
import from here, never from each
other."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
