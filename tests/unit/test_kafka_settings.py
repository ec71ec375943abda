"""Kafka settings: one place turns them into client options; inconsistent settings are refused at start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.kafka import client_kwargs
from shared.settings import CommonSettings, KafkaSettings


def test_plaintext_is_the_default_and_a_bare_bootstrap_means_a_local_broker():
    assert client_kwargs(KafkaSettings(KAFKA_BOOTSTRAP_SERVERS="b:9092")) == {
        "bootstrap_servers": "b:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert client_kwargs("127.0.0.1:9092") == {"bootstrap_servers": "127.0.0.1:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_ssl_passes_mechanism_credentials_and_a_tls_context(tmp_path):
    import ssl

    settings = KafkaSettings(
        KAFKA_BOOTSTRAP_SERVERS="broker.example:9096",
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        KAFKA_SASL_USERNAME="ingest",
        KAFKA_SASL_PASSWORD="s3cret",
    )
    kwargs = client_kwargs(settings)
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("ingest", "s3cret")
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext) and kwargs["ssl_context"].check_hostname


def test_the_password_never_shows_in_the_settings_repr():
    settings = CommonSettings(KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_USERNAME="u",
                              KAFKA_SASL_PASSWORD="hunter2")  # fmt: skip
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"KAFKA_SASL_MECHANISM": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
        ({"KAFKA_REPLICATION_FACTOR": "1", "KAFKA_MIN_INSYNC_REPLICAS": "2"}, "cannot exceed"),
        ({"KAFKA_TOPIC_PARTITIONS": "0"}, "KAFKA_TOPIC_PARTITIONS"),
        ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "no such file"),
    ],
)
def test_inconsistent_kafka_settings_are_refused_with_the_variable_named(env, fragment, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        KafkaSettings()
    assert fragment in str(error.value)
