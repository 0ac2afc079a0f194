"""The `stratopt` CLI and the Python client library on the generated stubs.

    from stratopt.client import Client
    with Client("127.0.0.1:50051") as client:
        client.login("trader", "...")
        bt = client.backtest("ds-id", strategy_type="sma_crossover", parameters={"fast": 10})

`Client` blocks, `AsyncClient` is its asyncio twin; docs/client.md is the guide.
"""

from stratopt.client.async_client import (
    AsyncClient,
    AsyncJobWatch,
    AsyncLiveFollow,
    AsyncNotificationFollow,
)
from stratopt.client.retry import NO_RETRY, RetryPolicy
from stratopt.client.session import AuthenticationRequired
from stratopt.client.sync_client import (
    Client,
    DownloadIncomplete,
    JobWatch,
    LiveFollow,
    NotificationFollow,
)

__all__ = [
    "NO_RETRY",
    "AsyncClient",
    "AsyncJobWatch",
    "AsyncLiveFollow",
    "AsyncNotificationFollow",
    "AuthenticationRequired",
    "Client",
    "DownloadIncomplete",
    "JobWatch",
    "LiveFollow",
    "NotificationFollow",
    "RetryPolicy",
]
