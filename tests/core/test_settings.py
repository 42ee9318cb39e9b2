"""Settings: defaults, the file, environment overrides, secrets only from the environment, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from inbox.settings import SettingsError, load_settings
from workers.runtime import register_plugin_settings

ROOT = Path(__file__).resolve().parents[2]


def test_the_documented_file_loads_and_matches_the_defaults() -> None:
    register_plugin_settings()
    documented = load_settings(ROOT / "settings.toml", env={})
    defaults = load_settings(None, env={"INBOX_SETTINGS": str(ROOT / "tests" / "core" / "empty.toml")})
    for name in ("core", "web", "workers", "ingest"):
        assert documented.section(name) == defaults.section(name), name


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('[web]\nport = 9000\n')
    s = load_settings(f, env={"INBOX_WEB__PORT": "9100", "INBOX_DATA_DIR": "/srv/inbox"})
    assert s.web.port == 9100
    assert s.core.data_dir == "/srv/inbox"


def test_secret_in_the_file_stops_start_up(tmp_path: Path) -> None:
    f = tmp_path / "s.toml"
    f.write_text('[web]\napi_token = "oops"\n')
    with pytest.raises(SettingsError, match=r"web\.api_token.*INBOX_WEB__API_TOKEN"):
        load_settings(f, env={})


def test_secret_from_the_environment(tmp_path: Path) -> None:
    s = load_settings(None, env={"INBOX_WEB__API_TOKEN": "t0k3n", "INBOX_SETTINGS": str(tmp_path / "none.toml")}) \
        if (tmp_path / "none.toml").write_text("") is not None else None
    assert s is not None and s.web.api_token == "t0k3n"


@pytest.mark.parametrize("content, key", [
    ('[web]\nprot = 1\n', "web.prot"),
    ('[wbe]\nport = 1\n', "wbe"),
    ('[web]\nport = "ochenta"\n', "web.port"),
    ('[core]\nstore = "postgres"\n', "core.store"),
    ('[workers]\nin_process = 3\n', "workers.in_process"),
])
def test_bad_settings_name_the_key(tmp_path: Path, content: str, key: str) -> None:
    f = tmp_path / "s.toml"
    f.write_text(content)
    with pytest.raises(SettingsError) as err:
        load_settings(f, env={})
    assert str(err.value).startswith(key)


def test_bad_environment_value_names_the_key() -> None:
    with pytest.raises(SettingsError, match="web.port"):
        load_settings(None, env={"INBOX_WEB__PORT": "x", "INBOX_SETTINGS": str(ROOT / "tests/core/empty.toml")})
