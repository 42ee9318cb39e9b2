"""The [email] settings section: accounts, validation, passwords from the environment only."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.email.plugin import parse_options
from inbox.settings import SettingsError
from workers.runtime import settings_from


def load(tmp_path: Path, text: str):
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return settings_from(str(path))


def test_accounts_defaults_and_domain(tmp_path: Path) -> None:
    s = load(tmp_path, '[[email.accounts]]\nname = "atencion"\naddress = "atencion@example.gub.uy"\n').email
    [acc] = s.accounts
    assert (acc.imap_port, acc.imap_tls, acc.after_commit, acc.idle, acc.login) == (993, True, "seen", True,
                                                                                     "atencion@example.gub.uy")
    assert s.domain == "example.gub.uy" and s.max_attachment_bytes == 25 * 1024 * 1024
    opts = parse_options(s)
    assert opts.own_addresses == {"atencion@example.gub.uy"} and opts.own_domains == {"example.gub.uy"}


def test_password_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INBOX_EMAIL__PASSWORD", "shared")
    monkeypatch.setenv("CONSULTAS_PW", "own")
    s = load(tmp_path, '[[email.accounts]]\nname = "a"\naddress = "a@x.uy"\n'
                       '[[email.accounts]]\nname = "b"\naddress = "b@x.uy"\npassword_env = "CONSULTAS_PW"\n').email
    assert s.password == "shared"
    assert [a.password(s.password) for a in s.accounts] == ["shared", "own"]
    assert s.accounts[1].smtp_password(s.password) == "own"


@pytest.mark.parametrize("text,key", [
    ('[email]\npassword = "x"\n', "email.password"),
    ('[[email.accounts]]\nname = "a"\naddress = "a@x.uy"\npassword = "x"\n', "password"),
    ('[[email.accounts]]\nname = "a"\naddress = "a@x.uy"\nafter_commit = "delete"\n', "after_commit"),
    ('[[email.accounts]]\nname = "a"\naddress = "not-an-address"\n', "address"),
    ('[[email.accounts]]\nname = "a"\naddress = "a@x.uy"\n[[email.accounts]]\nname = "a"\naddress = "b@x.uy"\n',
     "unique"),
    ('[email]\nack_text = "sin número"\n', "ack_text"),
])
def test_bad_settings_stop_start_up_naming_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(SettingsError, match=key):
        load(tmp_path, text)


def test_project_settings_file_documents_every_key() -> None:
    from dataclasses import fields

    from adapters.email.settings import EmailAccount, EmailSettings

    text = (Path(__file__).resolve().parents[2] / "settings.toml").read_text(encoding="utf-8")
    section = text[text.index("[email]"):]
    for f in fields(EmailSettings):
        assert f.name in section, f.name
    for f in fields(EmailAccount):
        assert f"# {f.name} = " in section, f.name
