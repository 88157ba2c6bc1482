"""Checks of every file in collector-config/.

Most checks are static: they read the YAML and the component list
(collector-config/contrib-components.txt) built from the contrib distribution's manifest.
``TestValidate`` runs the real Collector built from source (collector-config/build.sh)
on every file: `otelcol-lunary validate` builds each component from its configuration,
OTTL statements included, exactly as a start would, and the distribution must hold
exactly the component types the files use. ``TestStartsWithoutDeprecationWarnings``
starts it once on every file, since only a start logs the warning for a component
type's deprecated old name. Those tests skip when the binaries are not built, and fail
instead under CI=true.
Every file is picked up by glob, so a new scenario file is checked without editing this
module, and a file of an unknown kind fails until a check covers it.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

CONFIG_DIR = Path(__file__).resolve().parent.parent / "collector-config"
COMPONENTS_FILE = CONFIG_DIR / "contrib-components.txt"
COMPOSE_FILE = CONFIG_DIR / "docker-compose.yaml"
ROTEL_DIR = CONFIG_DIR / "rotel"
BUILD_FILES = {
    CONFIG_DIR / "build.sh",
    CONFIG_DIR / "otelcol" / "go.mod",
    CONFIG_DIR / "otelcol" / "go.sum",
    *(CONFIG_DIR / "otelcol").glob("*.go"),
    CONFIG_DIR / "jaeger" / "go.mod",
    CONFIG_DIR / "jaeger" / "go.sum",
}
JAEGER_CONFIG = CONFIG_DIR / "jaeger" / "jaeger-v2.yaml"

ALL_FILES = sorted(p for p in CONFIG_DIR.rglob("*") if p.is_file())
COLLECTOR_CONFIGS = sorted(p for p in CONFIG_DIR.glob("*.yaml") if p != COMPOSE_FILE)
ROTEL_ENV_FILES = sorted(ROTEL_DIR.glob("*.env"))

KINDS = ("receiver", "processor", "exporter", "extension", "connector")
SECTIONS = {kind + "s": kind for kind in KINDS}
ENV_REF = re.compile(r"\$\{env:[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}")
SECRET_KEY = re.compile(r"(password|secret|token|api_?key|authorization)", re.IGNORECASE)
# A comment line that reads like a YAML key ("#   batch:", "# - key: x") is commented-out config.
COMMENTED_OUT = re.compile(r"^\s*#\s*(-\s+)?[a-z0-9_./-]+:(\s|$)")


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(CONFIG_DIR)) for p in paths]


def _load(path: Path) -> dict:
    with path.open() as f:
        return yaml.safe_load(f)


def _components() -> tuple[str, set[tuple[str, str]]]:
    version = ""
    known: set[tuple[str, str]] = set()
    for line in COMPONENTS_FILE.read_text().splitlines():
        if line.startswith("# contrib-version:"):
            version = line.split(":", 1)[1].strip()
        elif line.strip() and not line.startswith("#"):
            kind, ctype = line.split()[:2]
            known.add((kind, ctype))
    return version, known


DEPRECATED_ALIAS = re.compile(r"\(deprecated alias of (\S+)\)")


def _deprecated_aliases() -> dict[tuple[str, str], str]:
    """(kind, old type) -> current type, from the rows contrib-components.txt marks as deprecated aliases."""
    aliases: dict[tuple[str, str], str] = {}
    for line in COMPONENTS_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#") and (found := DEPRECATED_ALIAS.search(line)):
            kind, ctype = line.split()[:2]
            aliases[(kind, ctype)] = found.group(1)
    return aliases


def _ctype(name: str) -> str:
    return name.split("/", 1)[0]


def _pipelines(config: dict) -> dict[str, dict]:
    return (config.get("service") or {}).get("pipelines") or {}


def _declared(config: dict, section: str) -> set[str]:
    return set(config.get(section) or {})


def _walk(node, path=()):
    """Yield (key path, value) for every scalar in a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, path + (str(key),))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, path + (str(index),))
    else:
        yield path, node


def _rotel_agent() -> Path:
    try:
        import rotel
    except ImportError:
        pytest.skip("the rotel wheel is not installed")
    return Path(rotel.__file__).parent / "rotel-agent"


def test_every_file_is_checked():
    """Every file in collector-config/ is one of the kinds this module checks."""
    known = set(COLLECTOR_CONFIGS) | set(ROTEL_ENV_FILES) | BUILD_FILES | {COMPOSE_FILE, COMPONENTS_FILE, JAEGER_CONFIG}
    assert COLLECTOR_CONFIGS, "no collector configs found"
    assert [p for p in ALL_FILES if p not in known] == []


@pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=_ids(COLLECTOR_CONFIGS))
class TestCollectorConfig:
    def test_parses_with_pipelines(self, path):
        """The file is YAML with at least one pipeline, so the collector can load it."""
        config = _load(path)
        assert isinstance(config, dict)
        assert _pipelines(config), "service.pipelines is empty"
        for name, pipeline in _pipelines(config).items():
            assert pipeline.get("receivers") and pipeline.get("exporters"), name

    def test_header_explains_purpose_and_how_to_run(self, path):
        """A reader new to the project learns from the header what the file is for and how to run it."""
        lines = path.read_text().splitlines()
        header = []
        for line in lines:
            if not line.startswith("#"):
                break
            header.append(line)
        assert len(header) >= 5, "missing header comment"
        assert "How to run it" in "\n".join(header)

    def test_pipeline_components_are_declared(self, path):
        """Every component a pipeline names is configured in its section, or the collector refuses to start."""
        config = _load(path)
        connectors = _declared(config, "connectors")
        for name, pipeline in _pipelines(config).items():
            for section in ("receivers", "processors", "exporters"):
                declared = _declared(config, section) | (connectors if section != "processors" else set())
                missing = [c for c in pipeline.get(section) or [] if c not in declared]
                assert missing == [], f"pipeline {name}: {section} not declared: {missing}"

    def test_declared_components_are_used(self, path):
        """Nothing is configured but left out of every pipeline, which would be dead configuration."""
        config = _load(path)
        used: set[str] = set()
        for pipeline in _pipelines(config).values():
            for section in ("receivers", "processors", "exporters"):
                used.update(pipeline.get(section) or [])
        for section in ("receivers", "processors", "exporters", "connectors"):
            assert _declared(config, section) - used == set(), section
        service_extensions = set((config.get("service") or {}).get("extensions") or [])
        assert _declared(config, "extensions") - service_extensions == set(), "extensions"
        assert service_extensions - _declared(config, "extensions") == set(), "undeclared extension"

    def test_component_types_exist_in_contrib(self, path):
        """Every component type ships in the otelcol-contrib distribution the docs point to."""
        _, known = _components()
        config = _load(path)
        unknown = [
            (kind, name)
            for section, kind in SECTIONS.items()
            for name in config.get(section) or {}
            if (kind, _ctype(name)) not in known
        ]
        assert unknown == []

    def test_no_deprecated_component_types(self, path):
        """Every component type is the release's current name, not an old one it accepts with a warning at start."""
        aliases = _deprecated_aliases()
        config = _load(path)
        old = [
            f"{kind} {name}: use {aliases[(kind, _ctype(name))]}"
            for section, kind in SECTIONS.items()
            for name in config.get(section) or {}
            if (kind, _ctype(name)) in aliases
        ]
        assert old == []

    def test_memory_limiter_first_then_batch(self, path):
        """memory_limiter runs first in every pipeline and batch after it, as the collector docs advise."""
        for name, pipeline in _pipelines(_load(path)).items():
            types = [_ctype(p) for p in pipeline.get("processors") or []]
            assert types[:1] == ["memory_limiter"], f"pipeline {name}: {types}"
            assert "batch" in types[1:], f"pipeline {name}: {types}"

    def test_load_balancing_routes_by_trace_id(self, path):
        """A load_balancing exporter keeps every span of a trace on one tail-sampling instance."""
        for name, exporter in (_load(path).get("exporters") or {}).items():
            if _ctype(name) == "load_balancing":
                assert exporter.get("routing_key") == "traceID", name

    def test_env_references_use_env_provider(self, path):
        """Environment variables are written ${env:NAME} (or ${env:NAME:-default}), the syntax current collectors expand."""
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
            rest = ENV_REF.sub("", code.replace("$$", ""))
            assert "$" not in rest, f"line {number}: {line.strip()}"

    def test_secrets_come_from_environment(self, path):
        """Credentials are never written into the file: every secret-looking value comes from ${env:...}."""
        for keys, value in _walk(_load(path)):
            if isinstance(value, str) and SECRET_KEY.search(keys[-1]):
                assert ENV_REF.search(value), ".".join(keys)

    def test_no_removed_logging_exporter(self, path):
        """The config uses debug, not the logging exporter that current collectors removed."""
        assert "logging" not in {_ctype(n) for n in _load(path).get("exporters") or {}}

    def test_no_commented_out_config(self, path):
        """Comments explain; they do not hold disabled configuration a reader must guess about."""
        lines = path.read_text().splitlines()
        assert [line for line in lines if COMMENTED_OUT.match(line)] == []


class TestTailSamplingLayout:
    def test_gateway_routes_to_a_tail_sampling_tier(self):
        """Each tail_sampling config can sit behind the gateway, which balances by trace id."""
        samplers = [p for p in COLLECTOR_CONFIGS if "tail_sampling" in {_ctype(n) for n in _load(p).get("processors") or {}}]
        gateways = [p for p in COLLECTOR_CONFIGS if "load_balancing" in {_ctype(n) for n in _load(p).get("exporters") or {}}]
        assert samplers and gateways
        for gateway in gateways:
            assert any(s.name in gateway.read_text() for s in samplers), f"{gateway.name} names no second tier"

    def test_negative_feedback_and_errors_are_kept(self):
        """Turns with a thumbs down or an error are always kept, whatever the sampling rate."""
        policies = _load(CONFIG_DIR / "tail-sampling.yaml")["processors"]["tail_sampling"]["policies"]
        types = {p["type"] for p in policies}
        assert {"status_code", "ottl_condition", "probabilistic"} <= types
        ottl = next(p for p in policies if p["type"] == "ottl_condition")["ottl_condition"]
        conditions = " ".join(ottl.get("span", []) + ottl.get("spanevent", []))
        assert "lunary.feedback" in conditions and "gen_ai.evaluation.score.label" in conditions


class TestRedaction:
    CONTENT = (
        "gen_ai.input.messages",
        "gen_ai.output.messages",
        "lunary.message.content",
        "gen_ai.tool.call.arguments",
        "gen_ai.tool.call.result",
        "gen_ai.evaluation.explanation",
        "input.value",
        "output.value",
    )

    def test_content_attributes_are_deleted_or_hashed(self):
        """Message content never reaches the backend behind redaction.yaml."""
        config = _load(CONFIG_DIR / "redaction.yaml")
        actions = {
            action["key"]: action["action"]
            for name, processor in config["processors"].items()
            if _ctype(name) == "attributes"
            for action in processor["actions"]
        }
        for key in self.CONTENT:
            assert actions.get(key) in ("delete", "hash"), key
        used = set(config["service"]["pipelines"]["traces"]["processors"])
        assert {n for n in config["processors"] if _ctype(n) == "attributes"} <= used

    def test_explanation_is_removed_from_span_events(self):
        """Feedback comments on gen_ai.evaluation.result events are removed too, not just span attributes."""
        transform = _load(CONFIG_DIR / "redaction.yaml")["processors"]["transform/redact-events"]
        events = [s for block in transform["trace_statements"] if block["context"] == "spanevent" for s in block["statements"]]
        assert 'delete_key(attributes, "gen_ai.evaluation.explanation")' in events


class TestComponentList:
    def test_version_header_and_kinds(self):
        """The component list says which contrib release it describes and holds only known kinds."""
        version, known = _components()
        assert re.fullmatch(r"v\d+\.\d+\.\d+", version)
        assert {kind for kind, _ in known} == set(KINDS)
        assert ("processor", "memory_limiter") in known and ("exporter", "debug") in known

    def test_no_duplicates(self):
        """Each component type is listed once per kind."""
        rows = [tuple(line.split()[:2]) for line in COMPONENTS_FILE.read_text().splitlines() if line.strip() and not line.startswith("#")]
        assert len(rows) == len(set(rows))

    def test_deprecated_aliases_point_at_listed_types(self):
        """Each deprecated alias names a current type of the same kind, so the advice "use X" is a type that exists."""
        _, known = _components()
        aliases = _deprecated_aliases()
        assert ("exporter", "otlp") in aliases and ("receiver", "otlp") not in aliases
        assert [(kind, old, new) for (kind, old), new in aliases.items() if (kind, new) not in known or (kind, new) in aliases] == []

    def test_version_is_the_release_the_tests_build(self):
        """The list (and so the compose image) describes the contrib release collector-config/otelcol builds."""
        version, _ = _components()
        go_mod = (CONFIG_DIR / "otelcol" / "go.mod").read_text()
        pinned = dict(re.findall(r"^\s*(\S+) (v\d+\.\d+\.\d+)\s*$", go_mod, re.MULTILINE))
        contrib = {m: v for m, v in pinned.items() if m.startswith("github.com/open-telemetry/opentelemetry-collector-contrib/")}
        assert contrib and set(contrib.values()) == {version}
        assert pinned["go.opentelemetry.io/collector/otelcol"] == version


class TestDockerCompose:
    def test_parses_and_mounts_existing_config(self):
        """`docker compose -f collector-config/docker-compose.yaml up` finds the collector config it mounts."""
        compose = _load(COMPOSE_FILE)
        mounts = [
            volume.split(":")[0]
            for service in compose["services"].values()
            for volume in service.get("volumes") or []
            if isinstance(volume, str)
        ]
        assert mounts
        for source in mounts:
            assert (COMPOSE_FILE.parent / source).resolve().is_file(), source
        assert any((COMPOSE_FILE.parent / s).resolve() in COLLECTOR_CONFIGS for s in mounts)

    def test_collector_image_matches_component_list(self):
        """The collector image runs the contrib release the component list was built from."""
        version, _ = _components()
        image = _load(COMPOSE_FILE)["services"]["otelcol"]["image"]
        assert image.startswith("otel/opentelemetry-collector-contrib:")
        assert image.endswith(f":-{version.lstrip('v')}}}") or image.endswith(f":{version.lstrip('v')}")

    def test_jaeger_is_v2(self):
        """Jaeger v2 is used, which ingests OTLP natively and serves the UI on 16686."""
        jaeger = _load(COMPOSE_FILE)["services"]["jaeger"]
        assert re.search(r"jaegertracing/jaeger:(\$\{JAEGER_VERSION:-)?2\.", jaeger["image"])
        assert any("16686" in str(port) for port in jaeger.get("ports") or [])


@pytest.mark.parametrize("path", ROTEL_ENV_FILES, ids=_ids(ROTEL_ENV_FILES))
class TestRotelEnvFile:
    @staticmethod
    def _settings(path: Path) -> dict[str, str]:
        settings = {}
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                key, sep, value = line.partition("=")
                assert sep and key == key.strip() and key.isupper(), line
                settings[key] = value
        return settings

    def test_keys_are_rotel_flags(self, path):
        """Every setting is an environment variable the bundled rotel-agent reads, so none is silently ignored."""
        help_text = subprocess.run(
            [str(_rotel_agent()), "start", "--help"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
        known = set(re.findall(r"\[env: (ROTEL_[A-Z0-9_]+)=", help_text))
        assert set(self._settings(path)) - known == set()

    def test_plain_values_with_header(self, path):
        """Values are plain (no quotes or $ expansion), so the file works for both `.` and `docker --env-file`."""
        assert path.read_text().startswith("# ")
        for key, value in self._settings(path).items():
            assert not re.search(r"[\"'$ ]", value), key
        assert self._settings(path).get("ROTEL_EXPORTER") in ("otlp", "blackhole")



@pytest.mark.parametrize("path", ROTEL_ENV_FILES, ids=_ids(ROTEL_ENV_FILES))
def test_rotel_env_file_starts_agent(path, tmp_path):
    """rotel-agent accepts every value in the env file and starts (receiver ports moved to free ones)."""
    from helpers.servers import RotelProcess, free_port, poll_until

    grpc_port, http_port = free_port(), free_port()
    env = TestRotelEnvFile._settings(path)
    env.update(ROTEL_OTLP_GRPC_ENDPOINT=f"127.0.0.1:{grpc_port}", ROTEL_OTLP_HTTP_ENDPOINT=f"127.0.0.1:{http_port}")
    agent = RotelProcess(
        [str(_rotel_agent()), "start", "--pid-file", str(tmp_path / "rotel.pid"), "--log-file", str(tmp_path / "d.log")],
        grpc_port=grpc_port,
        http_port=http_port,
        log_path=tmp_path / "rotel.log",
        env=env,
    )
    with agent.start():
        # The ports accept before the banner reaches the log file: wait for it, bounded.
        poll_until(lambda: "Starting Rotel" in agent.log(), timeout=10, what="rotel's start banner")


# Values for the variables a config requires (a ${env:NAME} without default). A new
# required variable fails test_required_variables_are_known until it gets a value here.
VALIDATE_ENV = {
    "BACKEND_OTLP_ENDPOINT": "127.0.0.1:4317",
    "REDACTED_EXPORT_ENDPOINT": "http://127.0.0.1:4318",
    "LANGFUSE_AUTH": "cGstbGYtMTpzay1sZi0x",
}
REQUIRED_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


def _validate(binary: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(VALIDATE_ENV)
    return subprocess.run([str(binary), "validate", f"--config={config}"], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture(scope="module")
def built():
    from helpers.collector import binaries

    return binaries()


class TestValidate:
    @pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=_ids(COLLECTOR_CONFIGS))
    def test_required_variables_are_known(self, path):
        """Every variable a config cannot start without has a value in VALIDATE_ENV."""
        assert set(REQUIRED_ENV.findall(path.read_text())) - set(VALIDATE_ENV) == set()

    @pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=_ids(COLLECTOR_CONFIGS))
    def test_collector_validates_config(self, built, path):
        """The real Collector accepts the file: known components, valid settings, OTTL that compiles."""
        done = _validate(built.otelcol, path)
        assert done.returncode == 0, done.stderr[-3000:]

    def test_collector_rejects_a_broken_config(self, built, tmp_path):
        """validate is a real check: a wrong OTTL statement in a copy of redaction.yaml fails it."""
        broken = tmp_path / "broken.yaml"
        broken.write_text((CONFIG_DIR / "redaction.yaml").read_text().replace("delete_key(attributes,", "delete_key(no_such_path,", 1))
        done = _validate(built.otelcol, broken)
        assert done.returncode != 0
        assert "no_such_path" in done.stderr

    def test_distribution_holds_exactly_the_components_used(self, built):
        """otelcol-lunary registers exactly the component types the configs use, under the names they use them by."""
        used: dict[str, set[str]] = {kind: set() for kind in KINDS}
        for path in COLLECTOR_CONFIGS:
            for section, kind in SECTIONS.items():
                used[kind].update(_ctype(name) for name in _load(path).get(section) or {})
        listed = yaml.safe_load(subprocess.run([str(built.otelcol), "components"], capture_output=True, text=True, check=True, timeout=60).stdout)
        shipped = {kind: {entry["name"] for entry in listed.get(kind + "s") or []} for kind in KINDS}
        assert shipped == used

    def test_component_list_names_what_the_release_ships(self, built):
        """Every type otelcol-lunary registers is in contrib-components.txt under that name, so the list holds the release's own names."""
        _, known = _components()
        listed = yaml.safe_load(subprocess.run([str(built.otelcol), "components"], capture_output=True, text=True, check=True, timeout=60).stdout)
        shipped = {(kind, entry["name"]) for kind in KINDS for entry in listed.get(kind + "s") or []}
        assert shipped and shipped - known == set()

    def test_jaeger_validates_its_config(self, built):
        """Jaeger v2 accepts collector-config/jaeger/jaeger-v2.yaml."""
        done = subprocess.run([str(built.jaeger), "validate", f"--config={JAEGER_CONFIG}"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]


# ---------------------------------------------------------------- start


DEPRECATION = re.compile(r"deprecat", re.IGNORECASE)


def _start_env(tmp_path: Path) -> dict[str, str]:
    """VALIDATE_ENV, an existing ARCHIVE_DIR, and every backend a config names moved to a closed local port.

    Nothing is sent, so no backend is needed; the local addresses only keep the
    exporters from resolving the example host names (jaeger, tempo, otelcol-sampling).
    """
    from helpers.servers import free_port

    archive = tmp_path / "archive"
    archive.mkdir(exist_ok=True)
    closed = f"127.0.0.1:{free_port()}"
    return {
        **VALIDATE_ENV,
        "BACKEND_OTLP_ENDPOINT": closed,
        "REDACTED_EXPORT_ENDPOINT": f"http://{closed}",
        "ARCHIVE_DIR": str(archive),
        "JAEGER_OTLP_ENDPOINT": closed,
        "TEMPO_OTLP_ENDPOINT": closed,
        "PHOENIX_COLLECTOR_ENDPOINT": f"http://{closed}",
        "LANGFUSE_HOST": f"http://{closed}",
        "SAMPLING_TIER_HOSTNAME": "localhost",
    }


def _deprecation_lines(built, config: Path, tmp_path: Path) -> list[str]:
    """Start otelcol-lunary on ``config`` until its health check answers, stop it; the log lines that mention a deprecation.

    The Collector builds every component, and logs "<old> alias is deprecated" for
    each one named by an old type name, before it starts the health check.
    """
    from helpers.collector import start_collector

    collector = start_collector(built.otelcol, str(config), tmp_path, _start_env(tmp_path))
    collector.stop()
    return [line for line in collector.log().splitlines() if DEPRECATION.search(line)]


class TestStartsWithoutDeprecationWarnings:
    @pytest.mark.parametrize("path", COLLECTOR_CONFIGS, ids=_ids(COLLECTOR_CONFIGS))
    def test_no_deprecation_warning_at_start(self, built, path, tmp_path):
        """A user starting the file sees no deprecation warning in the Collector's log."""
        assert _deprecation_lines(built, path, tmp_path) == []

    def test_an_old_type_name_is_caught(self, built, tmp_path):
        """The check is real: tempo.yaml with its exporter under the old name `otlp` logs the warning."""
        old = tmp_path / "old-names.yaml"
        old.write_text((CONFIG_DIR / "tempo.yaml").read_text().replace("otlp_grpc/tempo", "otlp/tempo"))
        lines = _deprecation_lines(built, old, tmp_path)
        assert lines and all('"otlp" alias is deprecated; use "otlp_grpc" instead' in line for line in lines), lines
