"""Bounded one-to-many streams: the live streams (`stratopt.live`) and job watchers
(`stratopt.jobs.watch`) both fan out through `hub.Topic`. The bottom layer: it imports
nothing but the standard library."""

from stratopt.fanout.hub import (
    DEFAULT_MAXSIZE,
    DEFAULT_PAGE_SIZE,
    Delivery,
    Event,
    HistoryReader,
    Hub,
    HubError,
    Sequenced,
    SequenceError,
    Subscription,
    Topic,
    TopicClosedError,
)

__all__ = [
    "DEFAULT_MAXSIZE",
    "DEFAULT_PAGE_SIZE",
    "Delivery",
    "Event",
    "HistoryReader",
    "Hub",
    "HubError",
    "SequenceError",
    "Sequenced",
    "Subscription",
    "Topic",
    "TopicClosedError",
]
