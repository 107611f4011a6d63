"""A storage outage leaves a readable log: one line per distinct problem, with a count, not one per
retry and file.

Measured before the fix (300 small files, WebDAV killed mid-batch, ``retry_max_seconds = 2``, 20 s
down): every retry cycle wrote the same four lines again, about a different file each time: rclone's
echo of the failed read-back (``rc: "operations/stat": error: read metadata failed: ... connection
refused``), trayagent's ``cannot read back the stored files yet: ...`` with its hint line, and the
retry notice ``d000/frame_000012.bin: read metadata failed: ...; retry in 1.9 s (attempt 3)``. The
failed files were due again at slightly different times, so they came back in ever more, ever
smaller groups (one ``operations/stat`` per group of up to 16 files): cycles multiplied with the
files, and the log grew by a few lines per file and retry period for as long as the outage lasted.

The same run also sent the 61 files that were in storage but not yet verified a second time: they
went back to the queue as if never sent. Now the unconfirmed files wait together (one due time: 13
retry cycles in that outage instead of 68) and are marked ``maybe_stored``, so the batch that sends
them again asks storage first; with the log folding (``logfold.py``) the outage leaves 9 lines.

The server is the real one (wsgidav, killed), the uploads real rclone; the log file is read as a user
would read it.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

from agentctl import Trayagent
from datagen import make_many, tree_of
from servers import WebDAVServer
from waiting import wait_until

FILES = 300
TRANSFERS = 4  # rclone's parallel transfers on WebDAV ("auto")
DOWN_SECONDS = 20
OUTAGE = "connection refused"  # what every request to the killed server ends with
LINE = re.compile(r"^\S+ \S+ (\w+)\s+\d+ (\S+): (.*)$")


def kinds(log_text: str, needle: str) -> Counter[str]:
    """Log lines mentioning ``needle``, by kind: logger and message with file names, addresses,
    timings and counts taken out (what makes them "the same line again")."""
    out: Counter[str] = Counter()
    for line in log_text.splitlines():
        m = LINE.match(line)
        if not m or needle not in line:
            continue
        text = re.sub(r"\(and \d+ more like it since [\d:]+\)|\(once more, at [\d:]+\)", "", m.group(3))
        text = re.sub(r"\S*frame_\d+\.bin", "FILE", text)
        text = re.sub(r"\d+(\.\d+)?", "#", text)
        out[f"{m.group(2)}: {text[:150]}"] += 1
    return out


def test_an_outage_mid_batch_logs_each_problem_once_with_a_count(ta: Trayagent, webdav_server: WebDAVServer,
                                                                tmp_path: Path) -> None:
    content = make_many(tmp_path / "d", FILES, size=4000, per_dir=FILES)
    ta.use_webdav(webdav_server, transfer={"bwlimit": "400k", "retry_max_seconds": 2})
    folder = Path(webdav_server.root) / "no-proposal" / "noise"
    proc = ta.popen("upload", str(tmp_path / "d"), "--dataset", "noise", "--json")
    wait_until(lambda: folder.is_dir() and sum(1 for _ in folder.rglob("*.bin")) >= 60, 120, interval=0.05,
               what="part of the batch in storage, not yet verified")
    webdav_server.kill()
    wait_until(lambda: "retry in" in ta.log_text, 60, what="the engine to notice the outage")
    time.sleep(DOWN_SECONDS)  # retry cycles against a server that is gone
    webdav_server.start()
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert json.loads(out)["files_ok"] == FILES
    assert tree_of(folder) == content

    log = ta.log_text
    seen = kinds(log, OUTAGE)
    table = "\n".join(f"{n:5d}  {kind}" for kind, n in seen.most_common())
    # each kind: its first occurrence in full, then at most a count per minute and one at the end
    assert seen and max(seen.values()) <= 3, f"the same line again and again:\n{table}"
    assert sum(seen.values()) <= 15, f"{sum(seen.values())} lines for one outage:\n{table}"
    # nothing lost: the first retry notice in full, and how many more there were
    assert re.search(r"frame_\d+\.bin: read metadata failed: Propfind \"[^\"]+\": dial tcp [\d.:]+: connect: "
                     r"connection refused; retry in [\d.]+ s \(attempt \d+\)\n", log), table
    held = [int(n) for n in re.findall(r"retry in [\d.]+ s \(attempt \d+\) \(and (\d+) more like it since", log)]
    assert held and sum(held) >= 5, table
    # rclone's per-file "Copied" lines are never folded: every file has its own, but for the few in
    # flight when the server died (seen: rclone said "Failed to copy", yet the read-back after the
    # outage found the file complete in storage, and it was not sent again)
    assert not re.search(r": Copied \([^)]*\) \((and \d+ more like it|once more)", log)
    sent = Counter(re.findall(r"(d000/frame_\d+\.bin): Copied \(", log))
    assert len(set(content) - set(sent)) <= TRANSFERS, sorted(set(content) - set(sent))
    # nothing sent twice: the files in storage but not yet verified when the server died are asked
    # about when it is back, not copied again (before: all 61 of them were), bar those in flight
    twice = sorted(name for name, n in sent.items() if n > 1)
    assert len(twice) <= TRANSFERS, f"{len(twice)} files sent twice: {twice[:10]}"
