"""Fixtures: a loopback S3 server (moto) with a bucket, and the AWS variables pointing at it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.storage.s3server import S3Server

BUCKET = "growsearch-test"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    pytest.importorskip("moto")
    pytest.importorskip("boto3")
    server = S3Server(tmp_path_factory.mktemp("moto") / "moto.log")
    server.create_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch, tmp_path) -> S3Server:
    """The server's AWS variables set in this process (and so in the Ray workers it starts),
    and a private scratch folder for the driver."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GROWSEARCH_SCRATCH", str(tmp_path / "scratch"))
    from growsearch.storage import _from_uri

    _from_uri.cache_clear()  # filesystems parsed under other variables
    assert os.environ["AWS_ENDPOINT_URL"] == s3_server.endpoint
    return s3_server
