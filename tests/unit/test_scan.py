"""Unit tests for trayagent.pipeline.scan: the source mapping rule, filters and the tree walk."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from trayagent.errors import ConfigError
from trayagent.pipeline import scan as scan_module
from trayagent.pipeline.scan import Filters, Source, batched, plan_sources, scan
from trayagent.queue import NewFile


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


NO_FILTERS = Filters()


def _relpaths(sources: list[Source], filters: Filters = NO_FILTERS,
              errors: list[str] | None = None) -> list[str]:
    return [f.relpath for f in scan(sources, filters, errors)]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return _tree(tmp_path / "run1", {"a.h5": "aa", "b.txt": "b", "raw/x.h5": "xxx", "raw/sub/y.h5": "y",
                                     "raw/sub/notes.txt": "n", ".DS_Store": "", "proc/x.h5": "p"})


# -- plan_sources --------------------------------------------------------------------------------


def test_one_folder_puts_its_contents_at_the_dataset_root(data: Path) -> None:
    sources = plan_sources([data])
    assert sources == [Source(data, "")]
    assert sorted(_relpaths(sources)) == [".DS_Store", "a.h5", "b.txt", "proc/x.h5", "raw/sub/notes.txt",
                                          "raw/sub/y.h5", "raw/x.h5"]


def test_several_paths_each_keep_their_name(tmp_path: Path, data: Path) -> None:
    other = _tree(tmp_path / "run2", {"z.h5": "z"})
    single = tmp_path / "log.txt"
    single.write_text("log")
    sources = plan_sources([data, str(other), single])
    assert sources == [Source(data, "run1"), Source(other, "run2"), Source(tmp_path, "", only="log.txt")]
    rels = _relpaths(sources)
    assert "run1/raw/sub/y.h5" in rels and "run2/z.h5" in rels and "log.txt" in rels
    assert all(r.startswith(("run1/", "run2/")) or r == "log.txt" for r in rels)


def test_single_file_maps_to_its_name(tmp_path: Path) -> None:
    f = tmp_path / "one.h5"
    f.write_bytes(b"12345")
    sources = plan_sources([f])
    assert sources == [Source(tmp_path, "", only="one.h5")]
    [found] = list(scan(sources, Filters()))
    assert (found.src_root, found.src_rel, found.relpath, found.size) == (str(tmp_path), "one.h5", "one.h5", 5)
    assert found.mtime_ns == f.stat().st_mtime_ns


def test_relative_paths_are_made_absolute(tmp_path: Path, data: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert plan_sources(["run1"]) == [Source(data, "")]


def test_duplicate_basenames_are_an_error(tmp_path: Path) -> None:
    a = _tree(tmp_path / "a" / "data", {"f": "1"})
    b = _tree(tmp_path / "b" / "data", {"f": "2"})
    c = _tree(tmp_path / "c", {"f": "3"})
    with pytest.raises(ConfigError) as info:
        plan_sources([a, b, c])
    assert info.value.message == "several paths have the same name: data"


def test_missing_paths_are_all_reported(tmp_path: Path, data: Path) -> None:
    with pytest.raises(ConfigError) as info:
        plan_sources([data, tmp_path / "gone1", tmp_path / "gone2"])
    assert str(tmp_path / "gone1") in info.value.message and str(tmp_path / "gone2") in info.value.message


def test_no_paths_is_an_error() -> None:
    with pytest.raises(ConfigError, match="nothing to upload"):
        plan_sources([])


def test_dotdot_path_cannot_map_outside_the_dataset(tmp_path: Path) -> None:
    _tree(tmp_path / "x", {"f": "1"})
    other = _tree(tmp_path / "y", {"g": "2"})
    sources = plan_sources([tmp_path / "x" / "..", other])
    assert all(part not in ("..", ".") for s in sources for part in s.prefix.split("/"))


# -- filters -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("include", "exclude", "relpath", "wanted"), [
    ((), (), "anything/at/all.bin", True),
    (("*.h5",), (), "raw/x.h5", True),
    (("*.h5",), (), "raw/x.txt", False),
    ((), ("*.txt",), "raw/sub/notes.txt", False),
    ((), ("raw",), "raw/x.h5", False),          # no '/': matches any component
    ((), ("raw",), "proc/raw.h5", True),
    ((), ("sub",), "raw/sub/y.h5", False),
    (("*.h5",), ("*.h5",), "a.h5", False),       # exclude wins
    (("raw/*.h5",), (), "raw/x.h5", True),       # '/': the whole relative path
    (("raw/*.h5",), (), "proc/x.h5", False),
    (("raw/*.h5",), (), "x.h5", False),
    (("/raw/*.h5",), (), "raw/x.h5", True),      # leading '/' anchors at the root
    (("raw/*.h5",), (), "raw/sub/y.h5", True),   # fnmatch '*' crosses '/'
    ((), ("raw/sub/",), "raw/sub", False),       # trailing '/' ignored: matches the folder itself
    ((), ("raw/sub/",), "raw/sub/y.h5", True),   # ...files below are dropped by pruning, not by wants()
    (("*.H5",), (), "x.h5", False),              # case-sensitive
])
def test_filters_wants(include: tuple[str, ...], exclude: tuple[str, ...], relpath: str, wanted: bool) -> None:
    assert Filters(include, exclude).wants(relpath) is wanted


def _one_pattern(pattern: str, relpath: str) -> bool:
    """The rule as documented, one pattern at a time with fnmatch (what the filters compile together)."""
    import fnmatch

    pattern = pattern.rstrip("/")
    if "/" in pattern:
        return fnmatch.fnmatchcase(relpath, pattern.lstrip("/")) or fnmatch.fnmatchcase(relpath, pattern)
    return any(fnmatch.fnmatchcase(part, pattern) for part in relpath.split("/"))


def test_patterns_compiled_together_answer_as_each_pattern_alone() -> None:
    """The filters match all their patterns with two regular expressions (the safety rescan matches
    every file of the tree against the 13 default ignores); the answers are the one-by-one rule's."""
    from trayagent.pipeline.scan import DEFAULT_IGNORES

    patterns = [*DEFAULT_IGNORES, "raw", "raw/*.h5", "/raw/sub/", "a+b(c)|d$", "[ab]?.dat", "[!x]*.h5", "",
                "x/", "**/*.log", "sc[0-9][0-9]/*", "we\\ird", "^start", "a.b"]
    paths = ["raw/x.h5", "proc/raw.h5", "raw/sub/y.h5", "raw/sub", "a+b(c)|d$", "ab.dat", "aa.dat", "x.h5",
             "y.h5", "notes.tmp", ".DS_Store", "dir/~lock", "a/.b.swp", "file~", ".#emacs", "x/y", "x",
             "deep/a/b/c.log", "sc01/f", "sc1/f", "we\\ird", "^start", "aXb", "a.b", "thumbs.db", "Thumbs.db",
             "é/ü.h5", "a//b", "/lead", "trail/"]
    for n in range(len(patterns) + 1):
        group = tuple(patterns[:n]) + tuple(patterns[n + 1:])  # every pattern left out once, and none
        for relpath in paths:
            expected = any(_one_pattern(p, relpath) for p in group)
            assert Filters((), group).wants(relpath) is not expected, (group, relpath)
            assert Filters(group, ()).wants(relpath) is (expected or not group), (group, relpath)
            assert Filters((), group).prunes(relpath) is expected, (group, relpath)


def test_prunes_uses_exclude_only() -> None:
    f = Filters(include=("*.h5",), exclude=("proc", "raw/sub"))
    assert f.prunes("proc") and f.prunes("a/proc") and f.prunes("raw/sub")
    assert not f.prunes("raw") and not f.prunes("raw/subway")


def test_scan_applies_filters_and_prunes_excluded_folders(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    listed: list[str] = []
    real = os.scandir

    def spy(path: Any) -> Any:
        listed.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(scan_module.os, "scandir", spy)
    rels = _relpaths([Source(data, "")], Filters(include=("*.h5",), exclude=("sub", ".DS_Store")))
    assert sorted(rels) == ["a.h5", "proc/x.h5", "raw/x.h5"]
    assert not any(p.endswith("/sub") for p in listed)  # the excluded folder was never opened
    assert any(p.endswith("/raw") for p in listed)


def test_folder_path_exclude_prunes_the_walk(data: Path) -> None:
    rels = _relpaths([Source(data, "")], Filters(exclude=("raw/sub/",)))
    assert "raw/x.h5" in rels and not any(r.startswith("raw/sub/") for r in rels)


def test_scan_output_is_sorted_depth_first(data: Path) -> None:
    assert _relpaths([Source(data, "")]) == [".DS_Store", "a.h5", "b.txt", "proc/x.h5", "raw/x.h5",
                                             "raw/sub/notes.txt", "raw/sub/y.h5"]


def test_scan_records_sources_and_sizes(data: Path) -> None:
    files = {f.relpath: f for f in scan([Source(data, "pre")], Filters())}
    f = files["pre/raw/x.h5"]
    assert (f.src_root, f.src_rel, f.size) == (str(data), "raw/x.h5", 3)
    assert f.mtime_ns == (data / "raw/x.h5").stat().st_mtime_ns


def test_single_file_source_is_filtered(tmp_path: Path) -> None:
    (tmp_path / "x.tmp").write_text("t")
    assert _relpaths([Source(tmp_path, "", only="x.tmp")], Filters(exclude=("*.tmp",))) == []


def test_vanished_single_file_is_reported(tmp_path: Path) -> None:
    errors: list[str] = []
    assert _relpaths([Source(tmp_path, "", only="gone.h5")], errors=errors) == []
    assert len(errors) == 1 and "gone.h5" in errors[0]


# -- errors and links ----------------------------------------------------------------------------


def test_unreadable_subfolder_is_reported_and_the_rest_scanned(data: Path) -> None:
    locked = data / "raw" / "sub"
    locked.chmod(0)
    try:
        try:
            os.listdir(locked)
        except PermissionError:
            pass
        else:
            pytest.skip("running with CAP_DAC_OVERRIDE (root): chmod 000 does not deny access here")
        errors: list[str] = []
        rels = _relpaths([Source(data, "")], errors=errors)
        assert "raw/x.h5" in rels and not any(r.startswith("raw/sub/") for r in rels)
        assert len(errors) == 1 and str(locked) in errors[0] and "cannot list folder" in errors[0]
    finally:
        locked.chmod(0o755)


def test_folder_that_cannot_be_listed_is_reported_and_the_rest_scanned(
        data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.scandir
    locked = str(data / "raw" / "sub")

    def deny(path: Any) -> Any:
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real(path)

    monkeypatch.setattr(scan_module.os, "scandir", deny)
    errors: list[str] = []
    rels = _relpaths([Source(data, "")], errors=errors)
    assert rels == [".DS_Store", "a.h5", "b.txt", "proc/x.h5", "raw/x.h5"]
    assert errors == [f"{locked}: cannot list folder (Permission denied)"]


def test_errors_list_is_optional(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def deny(path: Any) -> Any:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(scan_module.os, "scandir", deny)
    assert _relpaths([Source(data, "")], errors=None) == []


def test_symlinked_folders_are_not_followed(tmp_path: Path, data: Path) -> None:
    outside = _tree(tmp_path / "outside", {"secret.h5": "s"})
    (data / "link").symlink_to(outside, target_is_directory=True)
    (data / "raw" / "loop").symlink_to(data, target_is_directory=True)
    rels = _relpaths([Source(data, "")])
    assert not any(r.startswith(("link/", "raw/loop/")) for r in rels)
    assert "raw/x.h5" in rels


def test_symlinked_folder_is_not_reported_as_broken(tmp_path: Path, data: Path) -> None:
    (data / "link").symlink_to(_tree(tmp_path / "outside", {"s.h5": "s"}), target_is_directory=True)
    errors: list[str] = []
    rels = _relpaths([Source(data, "")], errors=errors)
    assert not any(r.startswith("link/") for r in rels)
    assert errors == []


def test_symlinked_file_is_included_and_broken_link_queued_to_fail_visibly(tmp_path: Path) -> None:
    """A broken link is queued (it then fails with its reason and can be retried), not skipped."""
    root = _tree(tmp_path / "d", {"real.h5": "1234"})
    (root / "alias.h5").symlink_to(root / "real.h5")
    (root / "dangling.h5").symlink_to(root / "missing.h5")
    files = {f.relpath: f.size for f in scan([Source(root, "")], Filters())}
    assert files["alias.h5"] == 4 and files["real.h5"] == 4 and "dangling.h5" in files


def test_scan_is_lazy(data: Path) -> None:
    it = scan([Source(data, "")], Filters())
    assert isinstance(it, Iterator)
    assert next(it).relpath == ".DS_Store"


# -- batched -------------------------------------------------------------------------------------


def _files(n: int) -> Iterator[NewFile]:
    return (NewFile("/r", f"f{i}", f"f{i}", i, i) for i in range(n))


@pytest.mark.parametrize(("n", "size", "lengths"), [(0, 3, []), (2, 3, [2]), (3, 3, [3]),
                                                   (7, 3, [3, 3, 1]), (5, 1, [1] * 5)])
def test_batched(n: int, size: int, lengths: list[int]) -> None:
    chunks = list(batched(_files(n), size))
    assert [len(c) for c in chunks] == lengths
    assert [f.relpath for c in chunks for f in c] == [f"f{i}" for i in range(n)]


def test_batched_pulls_only_one_chunk_at_a_time() -> None:
    pulled: list[int] = []

    def source() -> Iterator[NewFile]:
        for i in range(100):
            pulled.append(i)
            yield NewFile("/r", str(i), str(i), 0, 0)

    first = next(batched(source(), 10))
    assert len(first) == 10 and len(pulled) == 10


def test_a_fifo_and_a_link_to_a_folder_are_skipped_with_their_reason(tmp_path: Path) -> None:
    root = _tree(tmp_path / "d", {"a.h5": "a"})
    os.mkfifo(root / "pipe")
    (root / "link").symlink_to(_tree(tmp_path / "other", {"b.h5": "b"}), target_is_directory=True)
    skipped: list[str] = []
    assert [f.relpath for f in scan([Source(root, "")], NO_FILTERS, skipped=skipped)] == ["a.h5"]
    link_why = "a link to a folder (links to folders are not followed; upload the folder itself)"
    assert skipped == [f"{root / 'link'}: {link_why}",
                       f"{root / 'pipe'}: a FIFO (named pipe): only regular files are uploaded"]
    skipped.clear()  # named on its own: reading a FIFO would wait for a writer forever
    assert list(scan([Source(root, "", only="pipe")], NO_FILTERS, skipped=skipped)) == []
    assert skipped == [f"{root / 'pipe'}: a FIFO (named pipe): only regular files are uploaded"]
