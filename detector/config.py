"""One validated settings object, loaded once at start-up and passed in (never a module global).

Sources, strongest first: explicit overrides (CLI flags), environment variables
(``DETECTOR_<SECTION>__<KEY>``, e.g. ``DETECTOR_POLICY__SHADOW=true``), a TOML file (``--config``),
then the defaults below. A bad value fails at start-up with ``ConfigError`` naming the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from detector.ingest.formats import FORMATS, ClientKey, JsonlMapping
from detector.ingest.identity import parse_networks
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

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        parse_networks(v)
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
    tick: float = Field(1.0, gt=0, le=60, description="seconds of event time between scoring ticks")
    lateness: float = Field(2.0, ge=0, le=300, description="seconds a line may arrive out of order")


class PolicySettings(_Section):
    throttle_ttl: float = Field(300.0, gt=0)
    block_ttl: float = Field(900.0, gt=0)
    max_ttl: float = Field(86_400.0, gt=0)
    escalate_after: float = Field(30.0, ge=0)
    hysteresis: float = Field(0.02, ge=0, le=0.5)
    forget_after: float = Field(86_400.0, gt=0)
    shadow: bool = False
    allowlist: tuple[str, ...] = ()

    @field_validator("allowlist")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        parse_networks(v)
        return v

    def to_config(self) -> PolicyConfig:
        return PolicyConfig(self.throttle_ttl, self.block_ttl, self.max_ttl, self.escalate_after, self.hysteresis,
                            self.forget_after, self.shadow, parse_networks(self.allowlist))


class ApiSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    allow_cache_seconds: int = Field(5, ge=0, le=3600, description="X-Accel-Expires on allow answers")
    trusted_proxies: tuple[str, ...] = ()

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        parse_networks(v)
        return v


class Settings(BaseSettings):
    """Everything detector can be told. Sections: ingest, features, policy, api."""

    model_config = SettingsConfigDict(env_prefix="DETECTOR_", env_nested_delimiter="__", extra="forbid",
                                      frozen=True)

    model: Path = Field(Path("models/current"), description="model artifact (folder or 'current' pointer)")
    models_dir: Path = Path("models")
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    api: ApiSettings = Field(default_factory=ApiSettings)


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
