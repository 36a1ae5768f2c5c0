"""The pytest plugin (entry point `pytest11`): options and fixtures."""

from __future__ import annotations

import os
import uuid

import pytest

from .server import start_server


def pytest_addoption(parser):
    group = parser.getgroup("redrive")
    group.addoption("--redrive-bin", default=None, help="path of the redrive binary")
    group.addoption(
        "--redrive-config", default=None, help="queue file created at start (TOML)"
    )


@pytest.fixture(scope="session")
def redrive_server(request):
    """A `redrive serve --in-memory` for the whole session."""
    config = request.config.getoption("--redrive-config") or os.environ.get("REDRIVE_CONFIG")
    server = start_server(binary=request.config.getoption("--redrive-bin"), config=config)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redrive_endpoint(redrive_server) -> str:
    return redrive_server.endpoint


@pytest.fixture(scope="session")
def sqs(redrive_server):
    """A boto3 SQS client for the session's server."""
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=redrive_server.endpoint,
        region_name=redrive_server.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture
def sqs_queue(sqs):
    """A fresh standard queue (its URL), deleted after the test."""
    url = sqs.create_queue(QueueName=f"test-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    yield url
    sqs.delete_queue(QueueUrl=url)
