"""Secrets are recognised in every place the proxy stores: headers, paths, subprotocols."""

from __future__ import annotations

import pytest

from rtrec.recorder.redact import (
    REDACTED,
    PathRedactor,
    redact_headers,
    redact_path,
    redact_subprotocols,
    redact_text,
)


def test_credential_headers_are_replaced() -> None:
    """Authorization keeps its scheme; other credential headers lose their whole value."""
    out = dict(
        redact_headers(
            [
                ("Authorization", "Bearer sk-proj-123456789abc"),
                ("api-key", "abc"),
                ("OpenAI-Beta", "realtime=v1"),
                ("X-Custom", "token sk-live-abcdef123"),
            ]
        )
    )
    assert out["Authorization"] == f"Bearer {REDACTED}"
    assert out["api-key"] == REDACTED
    assert out["OpenAI-Beta"] == "realtime=v1"
    assert "sk-live-abcdef123" not in out["X-Custom"]


def test_query_credentials_are_replaced() -> None:
    """Credential query parameters go; model and call_id stay."""
    path = redact_path("/v1/realtime?model=gpt-realtime&api_key=sk-abcdef123456&call_id=rtc_1")
    assert "sk-abcdef123456" not in path
    assert "model=gpt-realtime" in path
    assert "call_id=rtc_1" in path


def test_browser_key_subprotocol_is_replaced() -> None:
    """The browser's openai-insecure-api-key.<KEY> subprotocol loses its key."""
    out = redact_subprotocols(
        ["realtime", "openai-insecure-api-key.ek_abc123def456", "openai-beta.realtime-v1"]
    )
    assert out == ["realtime", f"openai-insecure-api-key.{REDACTED}", "openai-beta.realtime-v1"]


def test_key_shaped_tokens_and_client_secrets_in_json() -> None:
    """sk-/ek_ tokens anywhere and client_secret values (object or string) are replaced."""
    text = (
        '{"a":"sk-proj-abcdefgh","client_secret":{"value":"opaque-value","expires_at":1},'
        '"b":{"client_secret":"also-opaque"},"c":"ek_12345678"}'
    )
    out = redact_text(text)
    for secret in ("sk-proj-abcdefgh", "opaque-value", "also-opaque", "ek_12345678"):
        assert secret not in out
    assert '"expires_at":1' in out


def test_path_redactor_rejects_bad_paths() -> None:
    """A redaction path that is not $.key... is refused with the path in the message."""
    with pytest.raises(ValueError, match=r"must start with '\$\.'"):
        PathRedactor(["session.instructions"])


def test_path_redactor_wildcards() -> None:
    """[*] walks every element of an array."""
    red = PathRedactor(["$.item.content[*].text"])
    out = red.apply(
        '{"type":"conversation.item.create","item":{"content":[{"text":"a"},{"text":"b"}]}}'
    )
    assert '"a"' not in out
    assert '"b"' not in out
    assert out.count(REDACTED) == 2
