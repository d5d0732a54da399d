"""Credentials out of log lines: query-string keys and URL passwords.

Headers never reach a log line, but a URL does: uvicorn's access log prints each
request target and httpx logs each upstream URL at debug, query string included.
Some APIs take the key there (Gemini's `?key=`, signed URLs' `sig=`), so values
of credential-like parameters are replaced before the line is written, as is the
password of an upstream URL given as `https://user:password@host`.
"""

from __future__ import annotations

import logging
import re
from typing import Final

REDACTED: Final = "***"
# A parameter name that says it carries a credential: key, api_key, x-goog-api-key,
# access_token, client_secret, password, sig/signature, auth, session, code.
_SECRET_PARAM: Final = re.compile(
    r"(?i)(^|[?&;])([^=&;#]*(?:key|token|secret|passw|pwd|auth|sig|session|credential|code)"
    r"[^=&;#]*=)[^&;#]*"
)
_USERINFO: Final = re.compile(r"(://[^/?#@\s:]*:)[^/?#@\s]*@")
# Loggers whose records carry URLs: uvicorn's access log and httpx's request log.
URL_LOGGERS: Final = ("uvicorn.access", "httpx")


def redact_query(text: str) -> str:
    """`text` (a URL, a request target) with its password and credential-like query values out."""
    text = _USERINFO.sub(lambda m: m.group(1) + REDACTED + "@", text)
    head, sep, query = text.partition("?")
    if not sep:
        return text
    return head + sep + _SECRET_PARAM.sub(lambda m: m.group(1) + m.group(2) + REDACTED, query)


class QueryRedactor(logging.Filter):
    """Rewrites a record's string and URL arguments through `redact_query`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_redacted(arg) for arg in record.args)
        if isinstance(record.msg, str) and ("?" in record.msg or "@" in record.msg):
            record.msg = redact_query(record.msg)
        return True


def _redacted(arg: object) -> object:
    # httpx passes an `httpx.URL`, uvicorn a str: both print as the URL.
    if isinstance(arg, str) or type(arg).__name__ == "URL":
        text = str(arg)
        return redact_query(text) if "?" in text or "@" in text else arg
    return arg


def install() -> None:
    """Add the redactor to the URL-logging loggers once; safe to call again."""
    for name in URL_LOGGERS:
        target = logging.getLogger(name)
        if not any(isinstance(f, QueryRedactor) for f in target.filters):
            target.addFilter(QueryRedactor())
