"""Typed settings: settings.toml, overridden by INBOX_<SECTION>__<KEY> environment variables.

Secrets (fields marked ``secret``) come only from the environment; writing one in the file stops start-up.
Unknown keys and bad values stop start-up with a message naming the key.
"""

from __future__ import annotations

import os
import tomllib
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

ENV_PREFIX = "INBOX_"


class SettingsError(ValueError):
    """A settings problem, with the offending key in the message."""


def secret(default: str = "") -> Any:
    return field(default=default, repr=False, metadata={"secret": True})


@dataclass
class CoreSettings:
    data_dir: str = "./data"
    store: str = "sqlite"  # sqlite | mongodb
    mongodb_url: str = "mongodb://127.0.0.1:27017"
    mongodb_database: str = "inbox"
    fsync_raw: bool = False  # fsync archived raw inputs (slower, survives power loss)
    log_level: str = "INFO"

    def validate(self) -> None:
        if self.store not in ("sqlite", "mongodb"):
            raise SettingsError(f"core.store: must be 'sqlite' or 'mongodb', got {self.store!r}")


@dataclass
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str = ""  # public URL used in links sent to citizens; default http://host:port
    secure_cookies: bool = False  # set true behind HTTPS
    api_token: str = secret()  # bearer token for the read-only JSON API
    secret_key: str = secret()  # signs sessions, CSRF tokens and survey links; generated per data dir if empty
    login_attempts_per_minute: int = 5
    contact_form_per_hour: int = 20
    max_upload_mb: int = 10


@dataclass
class WorkerSettings:
    in_process: list[str] = field(default_factory=lambda: ["jobs"])  # workers `inbox serve` runs
    job_lease_s: int = 60
    job_max_attempts: int = 8
    job_backoff_base_s: float = 2.0
    job_backoff_max_s: float = 3600.0
    poll_interval_s: float = 0.5


@dataclass
class IngestSettings:
    allow_any_sender_ticket_tag: bool = False  # accept "[#N]" from senders not on the ticket's contact
    reopen_resolved: bool = True


def _is_secret(f: Any) -> bool:
    return bool(f.metadata.get("secret"))


# Sections other packages add register here (before load) — see register_section.
SECTIONS: dict[str, type] = {
    "core": CoreSettings,
    "web": WebSettings,
    "workers": WorkerSettings,
    "ingest": IngestSettings,
}


def register_section(name: str, cls: type) -> type:
    SECTIONS[name] = cls
    return cls


class Settings:
    """All sections, as attributes: ``settings.core.data_dir``."""

    def __init__(self, sections: dict[str, Any]):
        self._sections = sections

    def __getattr__(self, name: str) -> Any:
        try:
            return self._sections[name]
        except KeyError:
            raise AttributeError(name) from None

    def section(self, name: str) -> Any:
        return self._sections[name]

    @property
    def data_dir(self) -> Path:
        return Path(self.core.data_dir)


def _coerce(key: str, tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise SettingsError(f"{key}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise SettingsError(f"{key}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{key}: expected an integer, got {value!r}") from None
    if tp is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{key}: expected a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, str):
            raise SettingsError(f"{key}: expected a string, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(key, args[0], value)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise SettingsError(f"{key}: expected a list, got {value!r}")
        return [_coerce(f"{key}[{i}]", item_tp, v) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SettingsError(f"{key}: expected a table, got {value!r}")
        return dict(value)
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise SettingsError(f"{key}: expected a table, got {value!r}")
        return _build(key, tp, value, {})
    return value


def _build(prefix: str, cls: Any, data: dict[str, Any], env: dict[str, str]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for k in data:
        if k not in known:
            raise SettingsError(f"{prefix}.{k}: unknown setting")
    kwargs: dict[str, Any] = {}
    env_prefix = ENV_PREFIX + prefix.upper().replace(".", "__") + "__"
    for name, f in known.items():
        key = f"{prefix}.{name}"
        env_name = env_prefix + name.upper()
        if name in data and _is_secret(f):
            raise SettingsError(f"{key}: is a secret; set it in the environment as {env_name}, not in the file")
        if env_name in env:
            kwargs[name] = _coerce(key, hints[name], env[env_name])
        elif name in data:
            kwargs[name] = _coerce(key, hints[name], data[name])
        elif f.default is MISSING and f.default_factory is MISSING:
            raise SettingsError(f"{key}: required")
    obj = cls(**kwargs)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Load settings.toml (if any), apply the environment, then explicit overrides ("core.data_dir": ...)."""
    env = dict(os.environ if env is None else env)
    data: dict[str, Any] = {}
    if path is None:
        path = env.get("INBOX_SETTINGS")
        if path is None and Path("settings.toml").exists():
            path = "settings.toml"
    if path is not None:
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path}: invalid TOML: {exc}") from exc
    if "INBOX_DATA_DIR" in env and "INBOX_CORE__DATA_DIR" not in env:
        env["INBOX_CORE__DATA_DIR"] = env["INBOX_DATA_DIR"]
    for name in data:
        if name not in SECTIONS:
            raise SettingsError(f"{name}: unknown settings section")
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, _, key = dotted.partition(".")
        data.setdefault(section, {})[key] = value
        env.pop(ENV_PREFIX + section.upper() + "__" + key.upper(), None)
    sections = {name: _build(name, cls, data.get(name, {}), env) for name, cls in SECTIONS.items()}
    return Settings(sections)
