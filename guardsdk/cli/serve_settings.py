"""The settings of ``guardsdk serve``, from four layers: command-line flags > ``GUARDSDK_*`` environment variables >
a config file (TOML or YAML, ``--config``) > defaults. One pydantic-settings model validates every layer, so a key
is spelt, typed and checked the same way wherever it comes from; a key the model does not know is an error."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PositiveFloat,
    PositiveInt,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict

from guardsdk.cache import DEFAULT_MAX_ENTRIES, DEFAULT_TTL_S
from guardsdk.cli.arguments import threshold_items
from guardsdk.cli.settings_files import SettingsError, checked_url, read_config_file, warn_unknown_variables
from guardsdk.detectors.build import MODES
from guardsdk.detectors.classifier import CLASSIFIER
from guardsdk.errors import redacted_url
from guardsdk.families import family_names
from guardsdk.guard import DEFAULT_MAX_INPUT_TOKENS, DEFAULT_TIMEOUT_S
from guardsdk.policy import Policy
from guardsdk.service.auth import load_api_keys
from guardsdk.service.config import MIN_HOLDBACK_CHARS, OnBlock, ServiceConfig
from guardsdk.verdict import Task

#: The environment variable naming the config file (``--config`` wins over it).
CONFIG_ENV = "GUARDSDK_CONFIG"
#: Keys that name the guard model: one of them is the model source, taken from the highest layer that sets any.
MODEL_SOURCES = ("gguf", "model", "server")
#: Keys not read from the environment: ``$GUARDSDK_MODEL`` keeps its meaning (``Guard()``'s default model, a GGUF
#: file or Hugging Face id, used when no layer names a model source).
NOT_FROM_ENV = frozenset({"model"})


Layer = Literal["flag", "env", "file", "default"]
#: Settings keys whose :class:`ServiceConfig` field has another name.
SERVICE_NAMES = {"timeout": "request_timeout_s", "cache_ttl": "cache_ttl_s"}
#: Settings keys that say which guard model runs and how (the ``guardsdk`` commands' model arguments).
GUARD_KEYS = ("gguf", "model", "server", "server_model", "family", "api_key", "mode", "max_new_tokens",
              "max_input_tokens", "timeout", "threads")  # fmt: skip


def _not_bool(value: Any) -> Any:
    """A number as given; ``true``/``false`` (YAML, TOML) is no number (pydantic would take it as 1/0)."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    return value


NotBool = BeforeValidator(_not_bool)
Int = Annotated[int, NotBool]
PosInt = Annotated[PositiveInt, NotBool]
PosFloat = Annotated[PositiveFloat, NotBool]
Float = Annotated[float, NotBool]


def _items(value: Any) -> Any:
    """A list from a comma-separated string (an environment variable); anything else as it is."""
    return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value


def _thresholds(value: Any) -> Any:
    """``{task: p}`` from ``TASK=P`` items (flags, or one comma-separated environment variable); a mapping as it is."""
    return dict(value) if isinstance(value, Mapping) else threshold_items(_items(value) or [])


Items = Annotated[list[str], NoDecode, BeforeValidator(_items)]
Tasks = Annotated[list[Task], NoDecode, BeforeValidator(_items)]
Secrets = Annotated[list[SecretStr], NoDecode, BeforeValidator(_items)]
Thresholds = Annotated[dict[Task, Annotated[float, Field(gt=0, le=1), NotBool]], NoDecode, BeforeValidator(_thresholds)]


class ServeSettings(BaseSettings):
    """Every setting of ``guardsdk serve``: a flag ``--foo-bar`` is the key ``foo_bar`` and the environment variable
    ``GUARDSDK_FOO_BAR`` (lists comma-separated; thresholds ``TASK=P,TASK=P``). Secrets are ``SecretStr``: they print
    as ``**********``. deploy/serve.toml documents each key."""

    model_config = SettingsConfigDict(env_prefix="GUARDSDK_", extra="forbid", frozen=True)

    # the guard model (one source: gguf, model or server; none: Guard()'s default model)
    gguf: Path | None = None
    model: str | None = None
    server: str | None = None
    server_model: str | None = None
    family: str | None = None
    api_key: SecretStr = SecretStr("EMPTY")
    mode: str = "single"
    max_new_tokens: PosInt | None = None
    max_input_tokens: PosInt = DEFAULT_MAX_INPUT_TOKENS
    timeout: PosFloat = DEFAULT_TIMEOUT_S
    threads: PosInt | None = None
    # the policy
    gates: Tasks = Field(default_factory=lambda: [Task.PROMPT_HARM, Task.RESPONSE_HARM])
    check_gates: Tasks = Field(default_factory=list)
    proxy_gates: Tasks = Field(default_factory=list)
    thresholds: Thresholds = Field(default_factory=dict)
    # the service
    host: str = ServiceConfig.host
    port: Int = Field(ServiceConfig.port, ge=0, le=65535)
    api_keys_file: Path | None = None
    api_keys: Secrets = Field(default_factory=list)
    upstream: str | None = None
    upstream_api_key: SecretStr = SecretStr(ServiceConfig.upstream_api_key)
    on_block: OnBlock = OnBlock.ERROR
    refusal: str = ServiceConfig.refusal
    max_body_bytes: PosInt = ServiceConfig.max_body_bytes
    max_concurrency: PosInt = ServiceConfig.max_concurrency
    max_queue: Int = Field(ServiceConfig.max_queue, ge=0)
    cache_entries: Int = Field(DEFAULT_MAX_ENTRIES, ge=0)
    cache_ttl: PosFloat = DEFAULT_TTL_S
    log_content: bool = False
    pass_fields: Items = Field(default_factory=list)
    expose_reasoning: bool = False
    batch_max_items: PosInt = ServiceConfig.batch_max_items
    batch_window_ms: Float = Field(ServiceConfig.batch_window_ms, ge=0, le=1000)
    stream_holdback_chars: Annotated[Int, Field(ge=MIN_HOLDBACK_CHARS)] | None = None
    otlp_endpoint: str | None = None
    log_format: Literal["json", "text"] = "json"

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: Any, **_: Any) -> tuple:
        """Only the values given: :func:`load_settings` reads the environment and the file as layers of its own."""
        return (init_settings,)

    @field_validator("upstream", "server")
    @classmethod
    def _http_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        return checked_url(str(info.field_name), value)

    @field_validator("otlp_endpoint")
    @classmethod
    def _collector_url(cls, value: str | None) -> str | None:
        return checked_url("otlp_endpoint", value, secrets=False)

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str | None) -> str | None:
        choices = [*family_names(), CLASSIFIER]
        if value is not None and value not in choices:
            raise ValueError(f"unknown family {value!r}; choose from {choices}")
        return value

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        if value not in MODES:
            raise ValueError(f"unknown mode {value!r}; choose from {list(MODES)}")
        return value

    def policy(self) -> Policy:
        """The service guard's policy: its gates and score thresholds."""
        return Policy(gates=frozenset(self.gates), thresholds=self.thresholds)

    def service_config(self) -> ServiceConfig:
        """The service's settings: each key named as a :class:`ServiceConfig` field (or in :data:`SERVICE_NAMES`),
        secrets revealed, lists as sets; API keys from ``api_keys`` and ``api_keys_file`` together."""
        fields = {field.name for field in dataclasses.fields(ServiceConfig)}
        values = {SERVICE_NAMES.get(key, key): _plain(getattr(self, key)) for key in type(self).model_fields}
        values = {name: value for name, value in values.items() if name in fields}
        if self.api_keys_file is not None:
            try:
                values["api_keys"] |= load_api_keys(self.api_keys_file, env="")
            except (OSError, UnicodeDecodeError) as exc:
                raise SettingsError(f"cannot read api_keys_file {self.api_keys_file}: {exc}") from None
        values["check_gates"] = values["check_gates"] or None  # none given: the policy's gates
        values["proxy_gates"] = values["proxy_gates"] or None
        return ServiceConfig(**values)

    def guard_arguments(self) -> argparse.Namespace:
        """The model settings as the ``guardsdk`` commands' arguments (what the CLI's model loader reads)."""
        return argparse.Namespace(command="serve", **{key: _plain(getattr(self, key)) for key in GUARD_KEYS})

    def logged(self, origin: Mapping[str, Layer], config_file: object = None) -> dict[str, Any]:
        """The effective settings for the start-up log: secrets as ``**********``, credentials in URLs removed, and
        where each value not left at its default came from."""
        data = self.model_dump(mode="json")  # SecretStr fields dump as "**********"
        for key in ("upstream", "server", "otlp_endpoint"):
            data[key] = _without_credentials(data[key])
        changed = {key: layer for key, layer in origin.items() if layer != "default"}
        return {"event": "config", "config_file": str(config_file) if config_file else None, "settings": data,
                "from": changed}  # fmt: skip


def _plain(value: Any) -> Any:
    """A setting as the service takes it: a secret revealed, a list as a frozenset, else as it is."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list):
        return frozenset(_plain(item) for item in value)
    return value


def _without_credentials(url: str | None) -> str | None:
    """``url`` as the start-up log shows it (:func:`~guardsdk.backends.server_logprobs.redacted_url`)."""
    return url if not url else redacted_url(url)


def environment_values() -> dict[str, Any]:
    """The settings ``GUARDSDK_*`` environment variables give (raw, validated with the rest)."""
    values = EnvSettingsSource(ServeSettings)()
    warn_unknown_variables(ServeSettings.model_fields, str(ServeSettings.model_config["env_prefix"]))
    return {key: value for key, value in values.items() if key not in NOT_FROM_ENV}


def load_settings(flags: Mapping[str, Any], config_file: str | os.PathLike[str] | None = None
                  ) -> tuple[ServeSettings, dict[str, Layer]]:  # fmt: skip
    """The settings from ``flags`` (only those given), the environment, and ``config_file`` (else
    ``$GUARDSDK_CONFIG``, else none), and the layer each key came from. Raises :class:`SettingsError`."""
    config_file = config_file or os.environ.get(CONFIG_ENV) or None
    layers: dict[Layer, dict[str, Any]] = {"flag": dict(flags), "env": environment_values(),
                                           "file": read_config_file(config_file) if config_file else {}}  # fmt: skip
    # the model source is one setting: the highest layer naming any source names it alone
    top = next((layer for layer in layers.values() if any(layer.get(key) is not None for key in MODEL_SOURCES)), None)
    for layer in layers.values():
        if layer is not top:
            for key in MODEL_SOURCES:
                layer.pop(key, None)
    merged = {**layers["file"], **layers["env"], **layers["flag"]}
    origin: dict[str, Layer] = {key: next(name for name, values in layers.items() if key in values) for key in merged}
    sources = [key for key in MODEL_SOURCES if merged.get(key) is not None]
    if len(sources) > 1:
        raise SettingsError(f"give one model source, not {' and '.join(sources)} ({origin[sources[0]]})")
    try:
        settings = ServeSettings(**merged)
    except ValidationError as exc:
        raise SettingsError(_one_line(exc, origin, config_file)) from None
    return settings, {name: origin.get(name, "default") for name in ServeSettings.model_fields}


def _one_line(exc: ValidationError, origin: Mapping[str, Layer], config_file: object) -> str:
    """The first problem of a validation error, in one line that says where the key came from."""
    error = exc.errors()[0]
    key = str(error["loc"][0]) if error["loc"] else "?"
    path = ".".join(map(str, error["loc"])) or "?"
    where = {"flag": "the command line", "env": f"${ServeSettings.model_config['env_prefix']}{key.upper()}",
             "file": f"config file {config_file}"}.get(origin.get(key, "file"), "defaults")  # fmt: skip
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(key, list(ServeSettings.model_fields), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"{where}: unknown key {key!r}{hint}"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {path}: {message}"
