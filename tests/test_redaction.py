"""Credential-like query values are replaced in URL log lines; everything else is kept."""

from __future__ import annotations

import logging

import httpx
import pytest

from tokenopt import redaction
from tokenopt.redaction import redact_query


@pytest.mark.parametrize(("url", "expected"), [
    ("/v1/models?key=AIza-secret&beta=true", "/v1/models?key=***&beta=true"),
    ("/x?api_key=s&x-goog-api-key=t&limit=2", "/x?api_key=***&x-goog-api-key=***&limit=2"),
    ("https://h/p?access_token=a;sig=b#frag", "https://h/p?access_token=***;sig=***#frag"),
    ("/x?client_secret=&Password=p", "/x?client_secret=***&Password=***"),
    ("/v1/models?limit=2&order=desc", "/v1/models?limit=2&order=desc"),
    ("/v1/models", "/v1/models"),
    ("https://user:pa55@router.example/v1?key=k", "https://user:***@router.example/v1?key=***"),
    ("http://router.example/a@b", "http://router.example/a@b"),
])
def test_query_values_named_like_credentials_are_replaced(url: str, expected: str) -> None:
    assert redact_query(url) == expected


def test_the_url_loggers_write_redacted_lines(caplog: pytest.LogCaptureFixture) -> None:
    redaction.install()
    redaction.install()  # idempotent: one filter each
    loggers = [logging.getLogger(name) for name in redaction.URL_LOGGERS]
    for logger in loggers:  # uvicorn's config stops access lines propagating to the root
        caplog.set_level(logging.DEBUG, logger=logger.name)
        logger.addHandler(caplog.handler)
    try:
        url = httpx.URL("http://upstream/v1/models?key=planted-1")
        loggers[1].info('HTTP Request: %s %s "%s"', "GET", url, "HTTP/1.1 200 OK")
        loggers[0].info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET",
                        "/v1/models?token=planted-2", "1.1", 200)
    finally:
        for logger in loggers:
            logger.removeHandler(caplog.handler)

    assert "planted" not in caplog.text
    assert "models?key=*** " in caplog.text and "models?token=*** " in caplog.text
    installed = [[f for f in logger.filters if isinstance(f, redaction.QueryRedactor)]
                 for logger in loggers]
    assert [len(filters) for filters in installed] == [1, 1]
