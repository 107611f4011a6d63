"""The site-wide configuration layer (issue 21): IT's file under the user's, locked keys, saving that
keeps the user's comments, read-only files refused with a clear message, `config show`."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import tomllib
from dataclasses import replace
from pathlib import Path

import pytest

from trayagent.config import SCHEMA, load_config
from trayagent.configfile import save_settings, show_config
from trayagent.errors import ConfigError
from trayagent.paths import Paths, resolve_paths, site_config_file

SITE = """\
# Facility settings (IT)
[storage]
remote = ":webdav,url='https://dav.example.org',vendor=other:"
root = "{proposal}/{dataset}"

[catalogue]
kind = "scicat"
url = "https://scicat.example.org"

[transfer]
transfers = 6

[locked]
keys = ["storage.remote", "catalogue"]
"""

USER = """\
# my own settings
[storage]
remote = "mine:"   # tries to upload elsewhere
user = "alice"

[transfer]
# faster, please
transfers = 8
"""


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    monkeypatch.delenv("TRAYAGENT_CONFIG", raising=False)
    monkeypatch.setenv("TRAYAGENT_SITE_CONFIG", str(tmp_path / "site" / "config.toml"))
    return resolve_paths({"TRAYAGENT_HOME": str(tmp_path / "home")}).ensure()


def write_site(text: str = SITE) -> Path:
    site = site_config_file()
    site.parent.mkdir(parents=True, exist_ok=True)
    site.write_text(text, encoding="utf-8")
    return site


def test_site_file_default_location_is_platformdirs_site_config_dir() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("TRAYAGENT_SITE_CONFIG", "XDG_CONFIG_DIRS")}
    expected = Path("/etc/xdg/trayagent/config.toml") if sys.platform.startswith("linux") else None
    if expected is not None:
        assert site_config_file(env) == expected
    assert site_config_file({"TRAYAGENT_SITE_CONFIG": "/x/site.toml"}) == Path("/x/site.toml")


def test_site_values_lie_under_the_user_file_and_locked_keys_over_it(paths: Paths,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    site = write_site()
    paths.config_file.write_text(USER, encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="trayagent"):
        cfg = load_config(paths)
    assert cfg.storage.remote.startswith(":webdav,url='https://dav.example.org'")  # locked: site wins
    assert cfg.transfer.transfers == 8               # not locked: the user's file wins over the site's 6
    assert cfg.storage.user == "alice"                # only the user sets it
    assert (cfg.catalogue.kind, cfg.catalogue.url) == ("scicat", "https://scicat.example.org")
    assert cfg.catalogue.verify_tls is True           # locked by section, not set: the default
    assert cfg.locked == {"storage.remote"} | {f"catalogue.{k}" for k in SCHEMA["catalogue"]}
    assert cfg.layers.overridden == ("storage.remote",)
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning == [f"{paths.config_file} sets storage.remote, but the site-wide file {site} locks it: "
                       "the site's value is used"]


def test_site_only_and_no_site(paths: Paths) -> None:
    assert load_config(paths).layers.site is None
    write_site()
    cfg = load_config(paths)
    assert cfg.source is None and cfg.layers.site == site_config_file()
    assert cfg.transfer.transfers == 6 and cfg.layers.origin("transfer.transfers") == "site"


@pytest.mark.parametrize(("locked", "problem"), [
    ('keys = ["storage.remot"]', "'storage.remot' is no configuration key"),
    ('keys = ["nope"]', "'nope' is no configuration key"),
    ('keys = "storage.remote"', "[locked] must hold only `keys`"),
    ('key = ["storage.remote"]', "[locked] must hold only `keys`"),
])
def test_bad_locked_table_is_named_with_the_site_file(paths: Paths, locked: str, problem: str) -> None:
    site = write_site(f"[locked]\n{locked}\n")
    with pytest.raises(ConfigError) as info:
        load_config(paths)
    assert info.value.message.startswith(f"{site}: ") and problem in info.value.message


def test_bad_value_in_site_file_names_the_site_file(paths: Paths) -> None:
    site = write_site("[transfer]\ntransfers = 0\n")
    with pytest.raises(ConfigError, match=f"^{site} \\(site-wide file\\): \\[transfer\\] transfers"):
        load_config(paths)


def test_saving_keeps_comments_and_layout_and_adds_only_what_differs(paths: Paths) -> None:
    write_site()
    paths.config_file.write_text(USER, encoding="utf-8")
    cfg = load_config(paths)
    settings = cfg.as_dict()
    settings["transfer"]["transfers"] = 4
    settings["transfer"]["bwlimit"] = "10M"
    settings["sync"]["polling"] = True
    assert save_settings(cfg, paths, settings) == paths.config_file
    text = paths.config_file.read_text(encoding="utf-8")
    assert text == USER.replace("transfers = 8", 'transfers = 4\nbwlimit = "10M"') + "\n[sync]\npolling = true\n"
    saved = load_config(paths)
    assert (saved.transfer.transfers, saved.transfer.bwlimit, saved.sync.polling) == (4, "10M", True)


def test_saving_a_new_file_writes_only_keys_that_differ_from_site_and_defaults(paths: Paths) -> None:
    write_site()
    cfg = load_config(paths)
    settings = cfg.as_dict()
    settings["storage"]["user"] = "bob"
    save_settings(cfg, paths, settings)
    assert tomllib.loads(paths.config_file.read_text()) == {"storage": {"user": "bob"}}
    assert stat.S_IMODE(paths.config_file.stat().st_mode) == 0o600


def test_changing_a_locked_key_is_refused_naming_key_and_site_file(paths: Paths) -> None:
    site = write_site()
    cfg = load_config(paths)
    settings = cfg.as_dict()
    settings["catalogue"]["url"] = "https://elsewhere.example.org"
    with pytest.raises(ConfigError) as info:
        save_settings(cfg, paths, settings)
    assert info.value.message == f"catalogue.url: set by your facility in {site}; this cannot be changed here"
    assert info.value.hint and not paths.config_file.exists()


def test_read_only_user_file_is_refused_with_a_clear_message(paths: Paths) -> None:
    paths.config_file.write_text(USER, encoding="utf-8")
    paths.config_file.chmod(0o444)  # as root too: IT's read-only mark is respected, not overridden
    cfg = load_config(paths)
    settings = cfg.as_dict()
    settings["transfer"]["transfers"] = 2
    with pytest.raises(ConfigError) as info:
        save_settings(cfg, paths, settings)
    assert info.value.message == f"{paths.config_file}: the configuration file is read-only, so nothing was saved"
    assert paths.config_file.read_text() == USER


def test_user_file_that_is_the_site_file_is_not_saved(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    site = write_site()
    monkeypatch.setenv("TRAYAGENT_CONFIG", str(site))
    cfg = load_config(paths)
    with pytest.raises(ConfigError, match="is the site-wide configuration file"):
        save_settings(cfg, paths, cfg.as_dict())
    assert site.read_text() == SITE


def test_unwritable_folder_is_a_config_error_not_a_crash(paths: Paths, tmp_path: Path) -> None:
    """A file whose folder is a file: the write fails with an OSError even for root (read-only media,
    a full disk and a folder without permission end the same way)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    cfg = replace(load_config(paths), source=blocker / "config.toml")
    settings = cfg.as_dict()
    settings["storage"]["user"] = "carol"
    with pytest.raises(ConfigError, match=f"^{blocker / 'config.toml'}: cannot be saved"):
        save_settings(cfg, paths, settings)


def test_config_show_prints_every_value_with_its_origin(paths: Paths) -> None:
    site = write_site()
    paths.config_file.write_text(USER, encoding="utf-8")
    text = show_config(load_config(paths), paths)
    assert f"# site-wide file: {site}" in text and f"# user file: {paths.config_file}" in text
    assert "# storage.remote: the user file's value is ignored (locked)" in text
    lines = text.splitlines()
    assert "remote = \":webdav,url='https://dav.example.org',vendor=other:\"  # site (locked)" in lines
    assert "transfers = 8  # user" in lines
    assert 'root = "{proposal}/{dataset}"  # site' in lines
    assert 'bwlimit = ""  # default' in lines
    assert tomllib.loads(text)["transfer"]["transfers"] == 8  # valid TOML: can be copied into a file


def test_config_show_from_the_command_line(paths: Paths, tmp_path: Path) -> None:
    write_site()
    paths.config_file.write_text(USER, encoding="utf-8")
    env = {**os.environ, "TRAYAGENT_HOME": str(tmp_path / "home"),
           "TRAYAGENT_SITE_CONFIG": str(site_config_file())}
    env.pop("TRAYAGENT_CONFIG", None)
    out = subprocess.run([sys.executable, "-m", "trayagent.cli", "config", "show"], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert "transfers = 8  # user" in out.stdout
    assert "trayagent: WARNING: " in out.stderr and "locks it" in out.stderr  # the override is told
