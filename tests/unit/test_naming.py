"""Unit tests for trayagent.storage.naming: nothing a user types can climb out of the storage root."""

from __future__ import annotations

import posixpath

import pytest

from trayagent.errors import ConfigError
from trayagent.storage.naming import render_root, sanitise_component

HOSTILE = ["..", ".", "...", "../../etc", "..\\..\\windows", "/", "\\", "/etc/passwd", "a/../../b",
           "", "   ", " . . ", "\x00", "evil\x00name", "tab\there", "new\nline", "\x7fdel", "esc\x1b[31m",
           "CON", "con", "NUL.txt", "nul.tar.gz", "COM1", "lpt9.log", "AUX ", "PRN.", "name.", "name. . ",
           'a:b*c?d"e<f>g|h', "x" * 500, "é" * 300, "..hidden/..", "C:\\Windows", "~", "$HOME"]
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
             *(f"LPT{i}" for i in range(1, 10))}


@pytest.mark.parametrize("name", HOSTILE)
def test_sanitised_component_is_one_safe_name(name: str) -> None:
    out = sanitise_component(name)
    assert out and out not in (".", "..")
    assert not set(out) <= {"."}
    assert "/" not in out and "\\" not in out
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in out)
    assert not any(c in out for c in ':*?"<>|')
    assert out == out.strip()
    assert out.split(".")[0].upper() not in _RESERVED
    assert len(out) <= 200


@pytest.mark.parametrize(("name", "expected"), [
    ("scan_001", "scan_001"),
    ("..", "_"),
    ("...", "_"),
    ("", "_"),
    ("   ", "_"),
    ("a/b\\c", "a_b_c"),
    ("../../etc", ".._.._etc"),
    ("new\nline\x00", "new_line_"),
    ("  padded  ", "padded"),
    ("trailing.", "trailing"),
    ("trailing . .", "trailing"),
    (".hidden", ".hidden"),
    ("CON", "_CON"),
    ("con", "_con"),
    ("NUL.txt", "_NUL.txt"),
    ("com9.tar.gz", "_com9.tar.gz"),
    ("CONSOLE", "CONSOLE"),
    ("COM10", "COM10"),
    ("e\u0301t\u00e9", "\u00e9t\u00e9"),  # NFC
])
def test_sanitise_component_examples(name: str, expected: str) -> None:
    assert sanitise_component(name) == expected


def test_long_names_are_cut_to_200_characters() -> None:
    assert sanitise_component("x" * 500) == "x" * 200
    assert sanitise_component("y" * 200) == "y" * 200


def test_sanitising_is_idempotent() -> None:
    for name in HOSTILE:
        once = sanitise_component(name)
        assert sanitise_component(once) == once


def test_long_non_ascii_name_fits_the_255_byte_limit() -> None:
    assert len(sanitise_component("é" * 300).encode("utf-8")) <= 255


def test_cut_name_has_no_trailing_dot_or_space() -> None:
    out = sanitise_component("a" * 199 + ". b")
    assert not out.endswith((".", " "))


# -- render_root ---------------------------------------------------------------------------------


def test_default_template() -> None:
    assert render_root("{proposal}/{dataset}", dataset="scan 7", proposal="p12345", user="bob") == \
        "p12345/scan 7"


def test_missing_proposal_and_user_get_placeholders() -> None:
    assert render_root("{user}/{proposal}/{dataset}", dataset="d", proposal=None, user=None) == \
        "anonymous/no-proposal/d"
    assert render_root("{user}/{proposal}/{dataset}", dataset="d", proposal="", user="") == \
        "anonymous/no-proposal/d"


def test_template_slashes_are_normalised() -> None:
    assert render_root("/data//{user}\\{dataset}/", dataset="d", proposal=None, user="u") == "data/u/d"


@pytest.mark.parametrize("dataset", HOSTILE)
@pytest.mark.parametrize("template", ["{proposal}/{dataset}", "{dataset}", "x/{user}/{dataset}"])
def test_nothing_escapes_the_root(template: str, dataset: str) -> None:
    rendered = render_root(template, dataset=dataset, proposal=dataset, user=dataset)
    parts = rendered.split("/")
    assert len(parts) == template.count("/") + 1  # each placeholder stays one component
    assert all(p and p not in (".", "..") for p in parts)
    root = "/storage/root"
    assert posixpath.normpath(posixpath.join(root, rendered)).startswith(root + "/")


@pytest.mark.parametrize("template", ["{nope}/{dataset}", "{0}", "{}", "{dataset", "dataset}",
                                      "{dataset!z}", "{dataset:d}"])
def test_bad_placeholders_are_config_errors(template: str) -> None:
    with pytest.raises(ConfigError) as info:
        render_root(template, dataset="d", proposal="p", user="u")
    assert "[storage] root" in info.value.message
    assert "{proposal}" in info.value.hint


@pytest.mark.parametrize("template", ["../{dataset}", "{proposal}/../{dataset}", "./{dataset}",
                                      "a\\..\\{dataset}"])
def test_dot_parts_in_template_are_config_errors(template: str) -> None:
    with pytest.raises(ConfigError, match=r"contains '\.' or '\.\.'"):
        render_root(template, dataset="d", proposal="p", user="u")


@pytest.mark.parametrize("template", ["{dataset.foo}", "{dataset[x]}"])
def test_attribute_and_index_placeholders_are_config_errors(template: str) -> None:
    with pytest.raises(ConfigError):
        render_root(template, dataset="d", proposal="p", user="u")
