"""moto's S3 server on loopback, for tests that need a real S3 endpoint.

moto's in-process `mock_aws` patches botocore inside this process only: s3fs (aiobotocore),
pyarrow and Polars, and any `keel serve` started as a subprocess, never see it. The threaded
server speaks real HTTP on 127.0.0.1, so every client reaches it the way it reaches S3.

Usage::

    with moto_server() as endpoint:          # sets the AWS_* variables for this process
        make_bucket(endpoint, "keel")
        env = s3_env(endpoint)               # for a subprocess: KEEL_S3_ENDPOINT_URL and AWS_*
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask a metadata service off this machine
}


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server on a free loopback port; yields its endpoint URL. The AWS variables
    (fake credentials, region) are set in this process while it runs and restored after."""
    server_mod = pytest.importorskip(
        "moto.server", reason="moto[server] is not installed (extra s3)"
    )
    pytest.importorskip("s3fs", reason="s3fs is not installed (extra s3)")
    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        _forget_s3fs()


def make_bucket(endpoint: str, bucket: str) -> None:
    """Create a bucket on the server (boto3, which moto[server] brings)."""
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)


def s3_env(endpoint: str) -> dict[str, str]:
    """Environment for a `keel` subprocess that talks to this server."""
    return {**AWS_ENV, "KEEL_S3_ENDPOINT_URL": endpoint}


def _forget_s3fs() -> None:
    """Drop cached S3 filesystems (they hold connections to the stopped server)."""
    try:
        import s3fs
    except ModuleNotFoundError:
        return
    s3fs.S3FileSystem.clear_instance_cache()
