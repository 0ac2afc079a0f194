"""The stored records the services hand to the api layer as they are.

Datasets, backtests, export files, feeds, runs, notifications and webhooks reach the
servicers as the store's rows, read-only: their fields are exactly what the contract shows,
so a copy would add nothing. They are
named here so that `api/` depends on `services/` only and never imports `store/`.
Strategies, whose answers add to the row (the owner's username), have their own view
(`services.strategies.StrategyView`).
"""

from __future__ import annotations

from stratopt.store.models import (
    Backtest,
    Dataset,
    ExportFile,
    Feed,
    LiveRun,
    Notification,
    Webhook,
)

__all__ = [
    "Backtest",
    "Dataset",
    "ExportFile",
    "Feed",
    "LiveRun",
    "Notification",
    "Webhook",
]
