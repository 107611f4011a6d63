"""Unit tests for trayagent.config (schema validation, loading, dumping) and trayagent.paths."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from trayagent.cli.main import in_cli_words
from trayagent.config import SCHEMA, Section, dump_config, load_config, validate
from trayagent.errors import ConfigError
from trayagent.paths import Paths, resolve_paths


@pytest.fixture
def paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    monkeypatch.delenv("TRAYAGENT_CONFIG", raising=False)
    return resolve_paths({"TRAYAGENT_HOME": str(tmp_path / "home")})


def _error(raw: dict[str, Any], origin: str = "/etc/ta.toml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        validate(raw, origin)
    return info.value


# -- validate ------------------------------------------------------------------------------------


def test_empty_config_gets_every_default() -> None:
    sections = validate({}, "x.toml")
    assert set(sections) == set(SCHEMA)
    for name, keys in SCHEMA.items():
        assert dict(sections[name]) == {k: spec.default for k, spec in keys.items()}
    assert sections["transfer"].transfers == "auto"
    assert sections["storage"].root == "{proposal}/{dataset}"


def test_given_values_override_defaults_and_others_stay_default() -> None:
    sections = validate({"transfer": {"transfers": 8, "bwlimit": "10M"}}, "x.toml")
    assert sections["transfer"]["transfers"] == 8
    assert sections["transfer"]["bwlimit"] == "10M"
    assert sections["transfer"]["batch_files"] == 2000


def test_default_lists_are_copies() -> None:
    sections = validate({}, "x.toml")
    sections["dataset"]["include"].append("*.h5")
    assert SCHEMA["dataset"]["include"].default == []
    assert validate({}, "x.toml")["dataset"]["include"] == []


def test_unknown_section_is_an_error_naming_known_ones() -> None:
    err = _error({"storag": {"remote": "x"}})
    assert "unknown section [storag]" in err.message
    assert "storage" in err.message.split("known:")[1]


def test_unknown_key_is_an_error() -> None:
    err = _error({"storage": {"remot": "store:"}})
    assert "[storage] remot: unknown key" in err.message
    assert "remote" in err.message


@pytest.mark.parametrize(("section", "key", "value", "expected"), [
    ("transfer", "transfers", True, "expected `auto` or a whole number greater than 0, got True"),
    ("transfer", "transfers", 4.0, "expected `auto` or a whole number greater than 0, got 4.0"),
    ("transfer", "transfers", "4", "expected `auto` or a whole number greater than 0, got '4'"),
    ("transfer", "transfers", "Auto", "expected `auto` or a whole number greater than 0, got 'Auto'"),
    ("sync", "polling", 1, "expected true or false, got 1"),
    ("sync", "quiet_seconds", False, "expected an integer or a number, got False"),
    ("storage", "remote", 3, "expected a string, got 3"),
    ("dataset", "include", "*.h5", "expected a list, got '*.h5'"),
    ("transfer", "transfers", 0, "expected `auto` or a whole number greater than 0, got 0"),
    ("transfer", "retry_max_seconds", -1.5, "expected a number greater than 0, got -1.5"),
    ("transfer", "checksum", "crc32", "expected one of 'auto', 'md5', 'sha1', 'sha256', 'blake2b', 'blake3'"),
    ("catalogue", "kind", "LOCAL", "expected one of 'local', 'scicat', got 'LOCAL'"),
    ("dataset", "exclude", ["*.tmp", ""], "expected a list of non-empty glob strings"),
    ("catalogue", "access_groups", [1], "expected a list of non-empty glob strings"),
])
def test_wrong_values_name_section_key_and_expectation(section: str, key: str, value: Any,
                                                      expected: str) -> None:
    err = _error({section: {key: value}})
    assert f"[{section}] {key}: {expected}" in err.message


@pytest.mark.parametrize(("section", "key", "value"), [
    ("transfer", "retry_max_seconds", 2.5),
    ("transfer", "retry_max_seconds", 7),
    ("sync", "quiet_seconds", 1),
    ("sync", "polling", True),
    ("catalogue", "kind", "scicat"),
    ("transfer", "checksum", "blake2b"),
])
def test_valid_values_are_accepted(section: str, key: str, value: Any) -> None:
    assert validate({section: {key: value}}, "x.toml")[section][key] == value


def test_section_that_is_not_a_table() -> None:
    err = _error({"storage": "store:"})
    assert "[storage] must be a table" in err.message


def test_all_problems_reported_at_once_in_one_error() -> None:
    err = _error({"bogus": {}, "storage": {"remot": "x"}, "transfer": {"transfers": True, "checksum": "x"},
                  "sync": {"polling": "yes"}}, origin="/site/trayagent.toml")
    assert err.message.startswith("/site/trayagent.toml: ")
    for fragment in ("unknown section [bogus]", "[storage] remot: unknown key", "[transfer] transfers:",
                     "[transfer] checksum:", "[sync] polling: expected true or false"):
        assert fragment in err.message
    assert len(err.message.split("; ")) == 5
    assert err.hint and "config reference" in err.hint
    assert err.exit_code == 2
    assert str(err).endswith(err.hint)


def test_section_attribute_access() -> None:
    section = Section(remote="store:")
    assert section.remote == "store:"
    with pytest.raises(AttributeError):
        _ = section.nope


# -- load_config ---------------------------------------------------------------------------------


def test_missing_default_file_means_embedded_default(paths: Paths) -> None:
    assert not paths.config_file.exists()
    cfg = load_config(paths)
    assert cfg.source is None
    assert cfg.as_dict() == {n: {k: s.default for k, s in keys.items()} for n, keys in SCHEMA.items()}


def test_default_file_is_read(paths: Paths) -> None:
    paths.ensure()
    paths.config_file.write_text('[storage]\nremote = "store:bucket"\n[transfer]\ntransfers = 2\n')
    cfg = load_config(paths)
    assert cfg.source == paths.config_file
    assert cfg.storage.remote == "store:bucket"
    assert cfg.transfer.transfers == 2
    assert cfg.catalogue.kind == "local"


def test_override_pointing_to_missing_file_is_an_error(paths: Paths, tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        load_config(paths, missing)
    assert str(missing) in info.value.message
    assert "no such configuration file" in info.value.message
    assert info.value.field == "config"  # the core names the input; the CLI adds its option:
    assert "(--config)" in in_cli_words(info.value)


def test_override_wins_over_env_and_default(paths: Paths, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    paths.ensure()
    paths.config_file.write_text("[transfer]\ntransfers = 2\n")
    env_file = tmp_path / "env.toml"
    env_file.write_text("[transfer]\ntransfers = 3\n")
    override = tmp_path / "override.toml"
    override.write_text("[transfer]\ntransfers = 5\n")
    monkeypatch.setenv("TRAYAGENT_CONFIG", str(env_file))
    assert load_config(paths, override).transfer.transfers == 5
    cfg = load_config(paths)
    assert (cfg.transfer.transfers, cfg.source) == (3, env_file)


def test_env_pointing_to_missing_file_is_an_error(paths: Paths, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAYAGENT_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError, match="gone.toml: no such configuration file"):
        load_config(paths)


def test_invalid_toml_names_the_file(paths: Paths, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[storage\nremote = 'x'\n")
    with pytest.raises(ConfigError) as info:
        load_config(paths, bad)
    assert info.value.message.startswith(f"{bad}: not valid TOML (")
    assert "line 1" in info.value.message


def test_non_utf8_file_is_reported_as_invalid(paths: Paths, tmp_path: Path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'[dataset]\ncreation_location = "/PSI/\xe9"\n')
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(paths, bad)


def test_directory_as_config_cannot_be_read(paths: Paths, tmp_path: Path) -> None:
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(paths, folder)


def test_validation_error_from_file_names_that_file(paths: Paths, tmp_path: Path) -> None:
    cfg = tmp_path / "site.toml"
    cfg.write_text("[transfer]\ntransfers = true\n")
    with pytest.raises(ConfigError) as info:
        load_config(paths, cfg)
    assert info.value.message == \
        f"{cfg}: [transfer] transfers: expected `auto` or a whole number greater than 0, got True"


# -- dump_config ---------------------------------------------------------------------------------


def _plain(sections: dict[str, Section]) -> dict[str, dict[str, Any]]:
    return {name: dict(section) for name, section in sections.items()}


def test_dump_of_defaults_is_empty() -> None:
    assert dump_config(_plain(validate({}, "x"))) == ""


def test_dump_round_trip() -> None:
    raw: dict[str, Any] = {
        "storage": {"remote": ":webdav,url='https://h/dav':", "root": "{user}\\{dataset}",
                    "rclone": 'C:\\Program Files\\"rclone".exe'},
        "catalogue": {"kind": "scicat", "verify_tls": False, "access_groups": ["a", "b c"]},
        "transfer": {"transfers": 16, "retry_max_seconds": 12.5},
        "dataset": {"creation_location": "/PSI/SLS/TÖMCAT", "exclude": ["*.tmp", "raw/*"]},
        "sync": {"polling": True},
    }
    sections = validate(raw, "x")
    text = dump_config(_plain(sections))
    assert "batch_files" not in text  # defaults are left out
    assert validate(tomllib.loads(text), "dumped") == sections


def test_dump_round_trip_with_control_characters() -> None:
    sections = validate({"dataset": {"creation_location": "line1\nline2\x01"}}, "x")
    assert validate(tomllib.loads(dump_config(_plain(sections))), "dumped") == sections


# -- paths ---------------------------------------------------------------------------------------


def test_trayagent_home_puts_everything_under_one_folder(tmp_path: Path) -> None:
    home = tmp_path / "agent"
    p = resolve_paths({"TRAYAGENT_HOME": str(home)})
    assert (p.config_dir, p.data_dir, p.log_dir, p.runtime_dir) == (
        home / "config", home / "data", home / "logs", home / "run")
    for f in (p.config_file, p.queue_db, p.catalogue_db, p.default_storage):
        assert f.is_relative_to(home)
    assert p.config_file == home / "config" / "config.toml"
    assert p.queue_db.parent == p.data_dir


def test_trayagent_home_expands_user_and_ensure_creates_private_dirs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    p = resolve_paths({"TRAYAGENT_HOME": "~/agent"}).ensure()
    assert p.data_dir == tmp_path / "agent" / "data"
    for d in (p.config_dir, p.data_dir, p.log_dir, p.runtime_dir):
        assert d.is_dir() and (d.stat().st_mode & 0o777) == 0o700


def test_environment_is_read_when_no_env_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRAYAGENT_HOME", str(tmp_path))
    assert resolve_paths().data_dir == tmp_path / "data"


def test_without_home_platform_dirs_are_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "xdg-run"))
    p = resolve_paths({})
    assert p.runtime_dir.is_relative_to(tmp_path / "xdg-run")
    assert "trayagent" in str(p.config_dir) and "trayagent" in str(p.data_dir)
    assert not p.config_dir.is_relative_to(tmp_path)
    assert os.path.isabs(p.log_dir)


def test_without_the_blake3_wheel_blake3_is_a_config_error_and_auto_uses_sha256() -> None:
    """A platform without a blake3 wheel: a clear config message, never a traceback at upload."""
    code = (
        "import sys; sys.modules['blake3'] = None\n"  # makes `import blake3` fail
        "from trayagent.pipeline.checksum import FAST_STRONG\n"
        "from trayagent.config import validate\n"
        "from trayagent.errors import ConfigError\n"
        "print(FAST_STRONG)\n"
        "try:\n"
        "    validate({'transfer': {'checksum': 'blake3'}}, 'x.toml')\n"
        "except ConfigError as exc:\n"
        "    print(exc.message)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    fallback, message = out.splitlines()[:2]
    assert fallback == "sha256"
    assert "[transfer] checksum: expected one of 'auto', 'md5', 'sha1', 'sha256', 'blake2b', got 'blake3'" \
        in message


def test_the_checksums_a_user_may_choose_are_the_ones_the_pipeline_hashes() -> None:
    """config.py spells the list out (the configuration imports no pipeline module): the two agree."""
    from trayagent.config import CHECKSUMS
    from trayagent.pipeline.checksum import ALGORITHMS

    assert ("auto", *ALGORITHMS) == CHECKSUMS
