"""Is another process still writing this file? One question, answered per platform.

Windows has no close events, but it does have mandatory sharing: opening a file while denying
other writers fails with a sharing violation when a writer still holds it open. On POSIX there is
no cheap equivalent (advisory locks are rarely taken by acquisition software), so the answer is
"not known to be in use" and close events plus the quiet period decide.
"""

from __future__ import annotations

import sys
from pathlib import Path

if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import ctypes
    from ctypes import wintypes

    _GENERIC_READ = 0x80000000
    _FILE_SHARE_READ = 0x00000001
    _OPEN_EXISTING = 3
    _ERROR_SHARING_VIOLATION = 32
    _INVALID_HANDLE = wintypes.HANDLE(-1).value
    _kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    _kernel32.CreateFileW.restype = wintypes.HANDLE

    def in_use_by_writer(path: Path) -> bool:
        handle = _kernel32.CreateFileW(str(path), _GENERIC_READ, _FILE_SHARE_READ, None, _OPEN_EXISTING,
                                       0, None)
        if handle == _INVALID_HANDLE:
            return ctypes.get_last_error() == _ERROR_SHARING_VIOLATION
        _kernel32.CloseHandle(handle)
        return False
else:
    def in_use_by_writer(path: Path) -> bool:
        return False
