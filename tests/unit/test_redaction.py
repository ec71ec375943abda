"""Secrets never reach logs or run messages."""

from structlog.testing import capture_logs

from shared.logging import REDACTED, redact_processor, redact_text


def test_known_secret_values_are_removed_from_free_text():
    text = 'connect failed: password authentication failed for "bob" (used hunter2)'
    assert "hunter2" not in redact_text(text, secrets=("hunter2",))


def test_key_value_and_dsn_passwords_are_removed():
    text = "dsn=postgresql://bob:s3cret@db:5432/x password=abc123 api_key: zzz"
    redacted = redact_text(text)
    assert "s3cret" not in redacted and "abc123" not in redacted and "zzz" not in redacted
    assert "postgresql://bob:" + REDACTED + "@db:5432/x" in redacted


def test_log_fields_named_like_secrets_are_redacted_recursively():
    event = {"event": "x", "credentials": {"password": "p"}, "config": {"host": "h", "api_key": "k"}}
    out = redact_processor(None, "info", dict(event))
    assert out["credentials"] == REDACTED
    assert out["config"] == {"host": "h", "api_key": REDACTED}


def test_structlog_chain_never_renders_a_password():
    import structlog

    structlog.configure(processors=[redact_processor, structlog.testing.LogCapture()])
    with capture_logs(processors=[redact_processor]) as logs:
        structlog.get_logger().info("connecting", password="hunter2", host="db")
    assert logs[0]["password"] == REDACTED and logs[0]["host"] == "db"
    structlog.reset_defaults()
