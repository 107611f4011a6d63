"""Scale guards that need no timing: memory flat in the number of files, and the no-op re-run.

Both drive the real CLI into the embedded local storage (real rclone, local catalogue)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agentctl import Trayagent

# Runs `trayagent upload` in this process and reports its own peak RSS (VmHWM; rclone is a child
# process and not counted) once the command returned.
_DRIVER = """
import sys
from trayagent.cli.main import main
code = main(sys.argv[1:])
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
sys.stderr.write(f"\\nVmHWM_KB={hwm.split()[1]}\\n")
sys.exit(code)
"""


def _tree(root: Path, n: int) -> Path:
    """n files of 0-6 bytes in folders of 1,000 (as detector frames are laid out)."""
    for i in range(n):
        folder = root / f"scan{i // 1000:03d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True)
        (folder / f"frame{i:06d}.raw").write_bytes(b"x" * (i % 7))
    return root


def _upload_peak(ta: Trayagent, src: Path, name: str) -> tuple[dict[str, object], int]:
    proc = subprocess.run([sys.executable, "-c", _DRIVER, "upload", str(src), "--dataset", name, "--json"],
                          capture_output=True, text=True, env=ta.env(), timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    peak = int(proc.stderr.rsplit("VmHWM_KB=", 1)[1].split()[0])
    return json.loads(proc.stdout), peak * 1024


def test_peak_memory_of_an_upload_does_not_grow_with_the_file_count(ta: Trayagent, tmp_path: Path) -> None:
    """20,000 files against 2,000: the upload streams from the queue in bounded batches (planning,
    verification, registration, the manifest, the outcome), so its peak RSS differs by < 20 MB.
    Before, the manifest was built in memory and the outcome loaded every row: +60 MB here."""
    small_out, small = _upload_peak(ta, _tree(tmp_path / "small", 2_000), "small")
    big_out, big = _upload_peak(ta, _tree(tmp_path / "big", 20_000), "big")
    assert (small_out["files_ok"], big_out["files_ok"]) == (2_000, 20_000)
    manifest = ta.storage_dir / "no-proposal" / "big" / "ro-crate-metadata.json"
    assert sum(1 for e in json.loads(manifest.read_text())["@graph"] if e["@type"] == "File") == 20_000
    assert big - small < 20 << 20, f"peak RSS {small >> 20} MB for 2,000 files, {big >> 20} MB for 20,000"


def test_a_rerun_over_an_unchanged_complete_dataset_does_no_work(ta: Trayagent, tmp_path: Path) -> None:
    """Like `rclone copy` to a filled destination: the scan and the comparison with the queue's records
    (size and mtime), then done: no manifest written again, nothing registered again. A changed file
    makes the next run upload it and write the manifest anew."""
    src = _tree(tmp_path / "run", 300)
    first = ta.upload_json(str(src), "--dataset", "same", "--proposal", "p")
    assert first[0] == 0 and first[1]["files_ok"] == 300
    manifest = ta.storage_dir / "p" / "same" / "ro-crate-metadata.json"
    written = manifest.stat().st_mtime_ns
    copied = ta.log_text.count(": Copied")
    rc, again = ta.upload_json(str(src), "--dataset", "same", "--proposal", "p")
    assert rc == 0 and (again["files_ok"], again["files_failed"], again["bytes"]) == (300, 0, first[1]["bytes"])
    assert again["catalogue_id"] == first[1]["catalogue_id"]
    assert manifest.stat().st_mtime_ns == written  # not rewritten
    assert ta.log_text.count(": Copied") == copied  # nothing sent
    assert "nothing new or changed since it was completed" in ta.log_text
    (src / "scan000" / "frame000005.raw").write_bytes(b"changed")
    os.utime(src / "scan000" / "frame000005.raw", ns=(1, 1))
    rc, third = ta.upload_json(str(src), "--dataset", "same", "--proposal", "p")
    assert rc == 0 and third["files_ok"] == 300
    assert manifest.stat().st_mtime_ns != written
    assert '"contentSize": "7"' in manifest.read_text()
    assert ta.log_text.count(": Copied") == copied + 1
