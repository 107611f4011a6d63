"""rclone's errors: the exception an rc call raises, and what its text means (retry or not, refused credentials)."""

from __future__ import annotations

import functools
import re

from ..errors import StorageError


class RcError(StorageError):
    """An rc call answered with an error status."""

    def __init__(self, method: str, status: int, error: str) -> None:
        super().__init__(f"rclone {method}: {error}", transient=is_transient(error))
        self.status = status
        self.error = error



# HTTP status codes only where rclone prints them as statuses, never digits inside file paths.
_STATUS = r"(?:status(?: code)?:? ?|http |error |failed: |\()"



@functools.cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """(auth, permanent, transient), compiled when the first error is classified, not at start-up."""
    flags = re.IGNORECASE | re.MULTILINE
    auth = re.compile(rf"({_STATUS}(401|403)\b|^(401|403)\b|\b(not authori[sz]ed|unauthori[sz]ed|forbidden|"
                      r"access ?denied|"
                      r"invalidaccesskeyid|signaturedoesnotmatch)\b)", flags)
    permanent = re.compile(rf"(({_STATUS}|^)(400|404|405|409|411|413|414|415)\b|\b(permission denied|"
                           r"no such bucket|nosuchbucket|directory not found|is a directory|invalid)\b)", flags)
    transient = re.compile(rf"(connection refused|timeout|timed out|connection reset|\beof\b|broken pipe|"
                           rf"no such host|temporar|unavailable|{_STATUS}5\d\d\b|^5\d\d\b|too many requests|"
                           rf"{_STATUS}429\b|source file is being updated|not answering|deadline exceeded)", flags)
    return auth, permanent, transient



def is_transient(error: str) -> bool:
    """Classify an rclone error text: can waiting and retrying help? Unknown errors: yes, since a
    wrongly permanent failure loses data while a wrongly transient one only costs retries."""
    if is_auth_error(error):
        return False
    _, permanent, transient = _patterns()
    if transient.search(error):
        return True
    return not permanent.search(error)



def is_auth_error(error: str) -> bool:
    return bool(_patterns()[0].search(error))
