"""What ``guardsdk serve``'s settings read besides flags: the config file (TOML or YAML, string keys, no key twice),
``GUARDSDK_*`` variables no setting reads (a warning), and the checks of the URL settings."""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger("guardsdk.service")

#: ``GUARDSDK_*`` variables read elsewhere than the settings (the model, models folder, config file, keys, a build).
OTHER_VARIABLES = frozenset({"GUARDSDK_MODEL", "GUARDSDK_MODELS_DIR", "GUARDSDK_CONFIG", "GUARDSDK_API_KEYS",
                             "GUARDSDK_LLAMA_CPP_SRC"})  # fmt: skip


class SettingsError(ValueError):
    """Settings that cannot be used: an unknown key, a bad value, an unreadable file (one line, exit 2)."""


def _yaml_loader() -> Any:
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (YAML keeps the last, silently)."""
    import yaml

    class UniqueKeys(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) or key is None:
                    if key in seen:
                        raise yaml.constructor.ConstructorError(None, None, f"key {key!r} given twice",
                                                                key_node.start_mark)  # fmt: skip
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return UniqueKeys


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The keys of a TOML (``.toml``) or YAML (``.yaml``, ``.yml``) config file: one flat table of string keys."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read config file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.load(text, Loader=_yaml_loader()) or {}  # a SafeLoader that refuses duplicate keys
        except yaml.constructor.ConstructorError as exc:
            if "given twice" not in str(exc.problem):
                raise SettingsError(f"config file {path} is not valid YAML: {' '.join(str(exc).split())}") from None
            line = f" (line {exc.problem_mark.line + 1})" if exc.problem_mark else ""
            raise SettingsError(f"config file {path}: {exc.problem}{line}") from None
        except yaml.YAMLError as exc:
            raise SettingsError(f"config file {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    else:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path} must hold a table of keys, not {type(data).__name__}")
    odd = [key for key in data if not isinstance(key, str)]  # YAML 1.1: on, yes, null are no strings
    if odd:
        raise SettingsError(f"config file {path}: key {odd[0]!r} is not a name (YAML reads on, yes, true as a "
                            "boolean and null as nothing: quote such a key)")  # fmt: skip
    hidden = next((key for key in data if not key[:1].isalpha()), None)  # e.g. pydantic-settings' _env_file
    if hidden is not None:
        raise SettingsError(f"config file {path}: unknown key {hidden!r}")
    return data


def warn_unknown_variables(settings: Collection[str], prefix: str, environ: Mapping[str, str] = os.environ) -> None:
    """One log line naming the ``prefix`` variables that neither a setting nor guardsdk elsewhere reads (a typo,
    such as ``GUARDSDK_THRESHOLD``, would otherwise be ignored); their values are not logged."""
    known = {prefix + name.upper() for name in settings} | OTHER_VARIABLES
    unknown = sorted(name for name in environ if name.upper().startswith(prefix) and name.upper() not in known)
    named = []
    for name in unknown:
        close = difflib.get_close_matches(name.upper(), sorted(known), n=1)
        named.append(f"{name} (did you mean {close[0]}?)" if close else name)
    if named:
        logger.warning("unknown %s variables ignored: %s", prefix + "*", ", ".join(named))


def checked_url(name: str, url: str | None, *, secrets: bool = True) -> str | None:
    """``url`` where it is an http(s) URL with a host and a valid port; ``secrets=False`` also refuses a user name,
    password or query string (the OTLP collector's: put credentials in ``OTEL_EXPORTER_OTLP_HEADERS``). Raises
    ``ValueError`` (whose message does not repeat the URL)."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"{name} is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http:// or https:// URL with a host")
    if not secrets and (parts.username is not None or parts.password is not None or parts.query or ";" in parts.path):
        raise ValueError(f"{name} must not carry credentials (user info, query, parameters): give them in "
                         "$OTEL_EXPORTER_OTLP_HEADERS")  # fmt: skip
    return url
