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
                           r"no such bucket|nosuchbucket|directory not found|is a directory|invalid)\b|"
                           r"didn't find section in config file)", flags)
    transient = re.compile(rf"(connection refused|timeout|timed out|connection reset|\beof\b|broken pipe|"
                           rf"no such host|temporar|unavailable|{_STATUS}5\d\d\b|^5\d\d\b|too many requests|"
                           rf"{_STATUS}429\b|source file is being updated|not answering|deadline exceeded)", flags)
    return auth, permanent, transient


@functools.cache
def _no_space() -> re.Pattern[str]:
    """Storage full or over quota, in the words of WebDAV servers (507, or the server's own ENOSPC
    inside a 500 page), HTTP proxies (413) and S3 (EntityTooLarge, QuotaExceeded, ...)."""
    return re.compile(rf"(no space left|insufficient storage|not enough (free )?space|disk (is )?full|"
                      r"quota ?exceeded|quota (limit|reached)|(over|exceeds?|insufficient) (the |your )?quota|"
                      rf"entitytoolarge|storage ?full|{_STATUS}(507|413)\b|^(507|413)\b|"
                      r"request entity too large|payload too large)", re.IGNORECASE | re.MULTILINE)


def is_no_space(error: str) -> bool:
    """Is this rclone error text a full storage or an exceeded quota (its own kind: neither a
    retry at the usual pace nor failing the file helps; someone must free space)?"""
    return bool(_no_space().search(error))


def is_transient(error: str) -> bool:
    """Classify an rclone error text: can waiting and retrying help? Unknown errors: yes, since a
    wrongly permanent failure loses data while a wrongly transient one only costs retries.
    A full storage is not transient: waiting at the usual pace only repeats the refusal."""
    if is_auth_error(error) or is_no_space(error):
        return False
    _, permanent, transient = _patterns()
    if transient.search(error):
        return True
    return not permanent.search(error)


def is_auth_error(error: str) -> bool:
    """Refused credentials; a quota refusal sent as 403 (S3's QuotaExceeded) is a full storage."""
    return bool(_patterns()[0].search(error)) and not is_no_space(error)


_TAG = re.compile(r"<[^>]*>")
_PAGE = re.compile(r"<(!doctype|html)\b", re.IGNORECASE)
_PAGE_END = re.compile(r"</html>", re.IGNORECASE)
_TITLE = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_SOURCE_EXC = re.compile(r"Source exception: \w+\(\d+, '([^']+)'\)")


def plain_error(error: str, limit: int = 300) -> str:
    """rclone's error text as a person reads it: a server's HTML error page (which rclone quotes
    whole) shrunk to its gist (the server's own exception where it names one, else the page's
    title), on one line, cut at ``limit`` characters. Classification reads the full text."""
    if page := _PAGE.search(error):
        import html

        end = _PAGE_END.search(error, page.start())
        body = error[page.start():end.end() if end else len(error)]
        text = html.unescape(_TAG.sub(" ", body))
        title = _TITLE.search(body)
        gist = m.group(1) if (m := _SOURCE_EXC.search(text)) else (title.group(1) if title else text)
        error = f"{error[:page.start()]}{gist}{error[end.end():] if end else ''}"
    error = " ".join(error.split())
    return error if len(error) <= limit else error[:limit - 1] + "…"
