"""One validated settings object, loaded once at start-up and passed in (never a module global).

Sources, strongest first: explicit overrides (CLI flags), environment variables
(``DETECTOR_<SECTION>__<KEY>``, e.g. ``DETECTOR_POLICY__SHADOW=true``), a TOML file (``--config``),
then the defaults below. A bad value fails at start-up with ``ConfigError`` naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from detector.ingest.formats import FORMATS, ClientKey, JsonlMapping
from detector.ingest.identity import parse_networks
from detector.features.stream import FeatureStream
from detector.policy import PolicyConfig


class ConfigError(ValueError):
    """A configuration value is missing or invalid; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestSettings(_Section):
    format: Literal["auto", "nginx-json", "nginx-combined", "envoy-json", "jsonl"] = "auto"
    client_field: str | None = Field(None, description="log field that keys a client (default: the address)")
    forwarded_for_field: str | None = Field(None, description="log field holding X-Forwarded-For")
    trusted_proxies: tuple[str, ...] = ()
    jsonl: dict[str, str] = Field(default_factory=dict, description="field mapping for format=jsonl")
    # live sources (detector serve); see detector/feeds.py
    tail: tuple[str, ...] = Field((), description="log files to follow (beside serve --tail)")
    stdin: bool = Field(False, description="also read log lines from standard input (serve --stdin)")
    tail_from: Literal["start", "end"] = Field("start", description="where to begin a file with no stored offset")
    offsets_path: str | None = Field(None, description="JSON file of tail offsets (default: next to the SQLite "
                                     "store, e.g. detector.offsets.json; '': keep none)")
    poll_interval: float = Field(0.2, gt=0, le=10, description="seconds between looks at a quiet file")
    batch_lines: int = Field(5000, ge=1, le=1_000_000, description="lines per batch into the pipeline (also the "
                             "at-least-once window of a tailed file after a crash)")
    queue_events: int = Field(100_000, ge=1, le=100_000_000, description="events queued at most before the "
                              "pipeline; then HTTP ingest answers 503 and tails wait")
    http: bool = Field(True, description="accept POST /v1/ingest")
    http_require_key: bool = Field(True, description="POST /v1/ingest needs an admin X-Api-Key")
    http_max_bytes: int = Field(16 * 1024 * 1024, ge=1024, le=1 << 30, description="largest ingest body, as "
                                "sent and decompressed (413 beyond)")
    retry_after: int = Field(1, ge=1, le=3600, description="Retry-After seconds on a 503 (queue full)")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        parse_networks(v)
        return v

    @field_validator("tail")
    @classmethod
    def _paths(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not p.strip() for p in v):
            raise ValueError("an empty path")
        return v

    @field_validator("jsonl")
    @classmethod
    def _mapping(cls, v: dict[str, str]) -> dict[str, str]:
        JsonlMapping(**v)
        return v

    def client_key(self) -> ClientKey:
        return ClientKey(self.client_field, self.forwarded_for_field, parse_networks(self.trusted_proxies))

    def mapping(self) -> JsonlMapping | None:
        return JsonlMapping(**self.jsonl) if self.jsonl else None


class FeatureSettings(_Section):
    tick: float = Field(FeatureStream.tick, gt=0, le=60, description="seconds of event time between scoring ticks")
    lateness: float = Field(2.0, ge=0, le=300, description="seconds a line may arrive out of order")
    idle_close: float = Field(1.0, ge=0, le=300, description="wall seconds without new lines after which ticks "
                              "close on the wall clock (0: only new lines close ticks)")
    max_clients: int = Field(100_000, ge=1, le=100_000_000, description="clients tracked at most; beyond it new "
                             "clients are counted, not tracked (a spoofed-address flood)")
    prefix_clients: int = Field(2, ge=0, le=65536, description="an IPv4 /24 or IPv6 /64 with this many active "
                                "addresses is also scored as one client, its verdicts covering the prefix (0: never)")
    max_open: float = Field(600.0, gt=0, le=86_400, description="seconds a request begun (a start record) "
                            "waits for its end before it is forgotten")
    max_open_requests: int = Field(200_000, ge=0, le=100_000_000, description="requests begun and not ended held "
                                   "at most; further start records are counted, not held")


class PolicySettings(_Section):
    throttle_ttl: float = Field(300.0, gt=0)
    block_ttl: float = Field(900.0, gt=0)
    max_ttl: float = Field(86_400.0, gt=0)
    escalate_after: float = Field(30.0, ge=0)
    hysteresis: float = Field(0.02, ge=0, le=0.5)
    forget_after: float = Field(86_400.0, gt=0)
    shadow: bool = False
    allowlist: tuple[str, ...] = ()
    incident_share: float = Field(0.3, gt=0, le=1, description="share of active clients failing at once "
                                  "that marks an incident, during which nobody is blamed")
    incident_grace: float = Field(60.0, ge=0, description="seconds after an incident still blamed on nobody")
    confirm_within: float = Field(30.0, ge=0, le=3600, description="a verdict needs two scores over the "
                                  "threshold at most this many seconds apart (0: one score is enough); models are "
                                  "calibrated for the value they were trained with")
    shared_agents: int = Field(8, ge=0, description="an address with this many user agents (not only refused) "
                               "in a minute is taken "
                               "for a shared one (office NAT, carrier gateway): throttled at most, never blocked "
                               "(0: off)")
    throttle_fpr: float | None = Field(None, ge=0, lt=1, description="share of the training day's clients whose "
                                       "highest score may reach throttle: the threshold is read again off the "
                                       "model's calibration scores (unset: the model's own target, in its card)")
    block_fpr: float | None = Field(None, ge=0, lt=1, description="the same for block, at most the throttle target "
                                    "(unset: the model's own, or throttle_fpr if that is lower)")

    @field_validator("block_fpr")
    @classmethod
    def _block_below_throttle(cls, v: float | None, info: ValidationInfo) -> float | None:
        throttle = info.data.get("throttle_fpr")
        if v is not None and throttle is not None and v > throttle:
            raise ValueError(f"block_fpr ({v}) must not exceed throttle_fpr ({throttle})")
        return v

    @field_validator("allowlist")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        parse_networks(v)
        return v

    def to_config(self) -> PolicyConfig:
        return PolicyConfig(self.throttle_ttl, self.block_ttl, self.max_ttl, self.escalate_after, self.hysteresis,
                            self.forget_after, self.shadow, parse_networks(self.allowlist),
                            self.incident_share, self.incident_grace, self.confirm_within,
                            self.shared_agents, self.throttle_fpr, self.block_fpr)


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    allow_cache_seconds: int = Field(5, ge=0, le=3600, description="X-Accel-Expires on allow answers")
    trusted_proxies: tuple[str, ...] = ()
    require_key: bool = Field(False, description="/authz, /score and /v1/model need an X-Api-Key too")
    watch_interval: float = Field(5.0, ge=0, le=3600, description="seconds between checks of the model's "
                                  "'current' pointer and of the store file for other writers (0: never)")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        parse_networks(v)
        return v


class StoreSettings(_Section):
    path: str = Field("detector.db", min_length=1,
                      description="SQLite file for decisions, the allowlist and API keys (':memory:': keep nothing)")
    keep_deleted: float = Field(7 * 86_400.0, gt=0, description="seconds an ended decision is kept once every "
                                "bouncer has heard of it")
    max_observations: int = Field(20_000, ge=1, le=100_000_000, description="clients whose latest score and "
                                  "features are kept for /score at most (the least recently scored go first)")


class DecisionSettings(_Section):
    shadow: tuple[Literal["model", "manual"], ...] = Field(
        (), description="origins whose decisions are simulated (reported, not enforced); policy.shadow: all")
    default_ttl: float = Field(4 * 3600.0, gt=0, description="duration of a manual decision given none")
    max_ttl: float = Field(365 * 86_400.0, gt=0, description="the longest manual decision accepted")

    def shadowed(self, everything: bool) -> tuple[str, ...]:
        return ("model", "manual") if everything else self.shadow


class Settings(BaseSettings):
    """Everything detector can be told. Sections: ingest, features, policy, api, store, decisions."""

    model_config = SettingsConfigDict(env_prefix="DETECTOR_", env_nested_delimiter="__", extra="forbid",
                                      frozen=True)

    model: Path = Field(Path("models/current"), description="model artifact (folder or 'current' pointer)")
    models_dir: Path = Path("models")
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    decisions: DecisionSettings = Field(default_factory=DecisionSettings)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings from defaults, a TOML file, the environment and ``overrides`` (strongest)."""
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"config file not found: {path}")

    class _FromFile(Settings):
        @classmethod
        def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                       env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                       file_secret_settings: PydanticBaseSettingsSource):
            sources = [init_settings, env_settings]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
            return tuple(sources)

    try:
        loaded = _FromFile(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(root)"
        raise ConfigError(f"bad config value for '{key}': {err['msg']}") from None
    except ValueError as exc:  # TOML syntax errors and the like
        raise ConfigError(f"bad config file {path}: {exc}") from None
    return loaded
