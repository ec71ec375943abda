"""The system status reads the lag of exactly the groups our services consume in."""

from services.api import asyncapi
from services.connector import bootstrap as connector
from services.connector import connection_testing
from services.notifier import bootstrap as notifier
from services.projector import bootstrap as projector
from shared.group_lag import OUR_GROUPS


def test_the_status_reads_the_lag_of_every_consumer_group_of_our_services() -> None:
    groups = {connector.CONSUMER_GROUP, connection_testing.CONSUMER_GROUP, projector.CONSUMER_GROUP,
              notifier.CONSUMER_GROUP}  # fmt: skip
    assert set(OUR_GROUPS) == groups


def test_the_asyncapi_document_names_every_consumer_group_of_our_services() -> None:
    named = {group for channel in asyncapi.CHANNELS for _, group in channel.consumers if group is not None}
    assert named == set(OUR_GROUPS)
