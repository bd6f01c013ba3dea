"""A dataset a Dask worker cannot reach is reported as that worker's failure: the client may
read the same dataset with credentials that only its own environment holds."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from botocore.exceptions import EndpointConnectionError, NoCredentialsError
from distributed import LocalCluster

from features.dask_runtime import dask_client, map_shards
from pipelines.storage import DatasetAccessError

WHERE = "the dataset at s3://bucket/small (endpoint http://127.0.0.1:8333)"
NO_CREDENTIALS = (
    f"cannot access {WHERE}: no credentials (give a key and secret in --storage-options or "
    "$AUDIOMILL_STORAGE_OPTIONS)"
)
UNREACHABLE = f"cannot reach {WHERE}: connection refused"


def no_credentials(shard: str) -> None:
    """A task whose worker has no credentials for the dataset, as ``DatasetStore`` says it."""
    raise DatasetAccessError(NO_CREDENTIALS) from NoCredentialsError()


def unreachable(shard: str) -> None:
    """A task whose worker cannot reach the dataset's endpoint."""
    raise DatasetAccessError(UNREACHABLE) from EndpointConnectionError(endpoint_url="x")


@pytest.fixture(scope="module")
def scheduler() -> Iterator[str]:
    """The address of a cluster that the stage connects to, as to one started apart."""
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


def test_missing_credentials_on_a_worker_say_where_and_why(scheduler: str) -> None:
    with dask_client(scheduler) as client, pytest.raises(DatasetAccessError) as raised:
        list(map_shards(no_credentials, [("waveforms/train/00000.h5",)], client))
    assert str(raised.value) == (
        f"on Dask worker {socket.gethostname()}: {NO_CREDENTIALS}; credentials in the environment "
        "of this command ($AWS_ACCESS_KEY_ID and the like) do not reach the workers"
    )


def test_other_access_errors_on_a_worker_say_where(scheduler: str) -> None:
    with dask_client(scheduler) as client, pytest.raises(DatasetAccessError) as raised:
        list(map_shards(unreachable, [("waveforms/train/00000.h5",)], client))
    assert str(raised.value) == f"on Dask worker {socket.gethostname()}: {UNREACHABLE}"


def test_a_cluster_started_here_shares_this_environment() -> None:
    with dask_client(None) as client, pytest.raises(DatasetAccessError) as raised:
        list(map_shards(no_credentials, [("waveforms/train/00000.h5",)], client))
    assert str(raised.value) == NO_CREDENTIALS
