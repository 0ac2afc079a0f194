"""Paper trading as use cases: feeds, start/stop, signals and fills, performance, streams.

Access follows the strategy rules (`services.access`): reading signals, fills, alerts and
performance needs READ on the strategy (a viewer it is shared with may stream it); starting
and stopping need EXECUTE. Feeds are owned like backtests: their owner (or an admin) sees,
pushes to, runs on and deletes them.

Everything a run needs is resolved here once (`RunSpec`): the strategy or ensemble with
its parameters, the execution options of the request over the strategy's own, the alert
rules, the feed and symbol. The run then needs nobody's rights to go on after a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from stratopt.engine.options import ExecutionOptions
from stratopt.errors import FailedPrecondition, FieldViolation, InvalidArgument
from stratopt.fanout import Delivery
from stratopt.live.bars import LiveBar
from stratopt.live.events import Kind, LiveEvent
from stratopt.live.manager import (
    MAX_UNSTORED_AHEAD,
    LiveManager,
    PerformanceView,
    PushOutcome,
    RunSpec,
)
from stratopt.security.principal import Principal
from stratopt.services.access import Access, load_strategy, owner_scope, require_owner
from stratopt.services.datasets import DatasetCatalog
from stratopt.services.type_resolution import resolve_in
from stratopt.services.validation import ENSEMBLE_TYPE, MAX_SYMBOLS, SYMBOL, TIMEFRAME
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.live_repo import LiveRepo
from stratopt.store.paging import (
    Cursor,
    decode_token,
    encode_token,
    page_size,
    query_hash,
    token_int,
)
from stratopt.strategies.user_types import is_user_type

FEED_KINDS = ("push", "replay")
MAX_BARS_PER_SECOND = 100_000.0
MAX_WARMUP_BARS = 100_000
MAX_PUSH_BATCH = 10_000


@dataclass(frozen=True)
class FeedDraft:
    kind: str
    display_name: str = ""
    symbols: tuple[str, ...] = ()
    timeframe: str = ""
    dataset_id: str = ""
    start_ns: int = 0
    bars_per_second: float = 0.0


@dataclass(frozen=True)
class FeedView:
    row: models.Feed
    running_strategies: int


@dataclass(frozen=True)
class StartRequest:
    strategy_id: str
    dataset_id: str = ""
    feed_id: str = ""
    symbol: str = ""
    start_ns: int = 0
    bars_per_second: float = 0.0
    warmup_bars: int = 0
    execution: ExecutionOptions | None = None


class LiveService:
    def __init__(
        self, db: Database, repo: LiveRepo, manager: LiveManager, datasets: DatasetCatalog
    ) -> None:
        self.db = db
        self.repo = repo
        self.manager = manager
        self.datasets = datasets

    # -- feeds ---------------------------------------------------------------------------

    async def create_feed(self, principal: Principal, draft: FeedDraft) -> FeedView:
        v = _feed_violations(draft)
        if v:
            raise InvalidArgument.of(v)
        row = models.Feed(
            id=models.new_id(),
            owner_id=principal.user_id,
            kind=draft.kind,
            display_name=draft.display_name.strip(),
            symbols=sorted({s.strip().upper() for s in draft.symbols}),
            timeframe=draft.timeframe,
            bars_per_second=draft.bars_per_second,
        )
        if draft.kind == "replay":
            dataset = await self.datasets.get(principal, draft.dataset_id)
            row.dataset_id = dataset.id
            row.symbols = [dataset.symbol.upper()]
            row.timeframe = dataset.timeframe
            row.start_ts = draft.start_ns or dataset.start_ts
            if draft.start_ns and not dataset.start_ts <= draft.start_ns <= dataset.end_ts:
                raise InvalidArgument.field("feed.start_time", "outside the dataset's period")
        await self.repo.add_feed(row)
        return FeedView(row, 0)

    async def get_feed(self, principal: Principal, feed_id: str) -> FeedView:
        row = require_owner(principal, await self.repo.get_feed(feed_id), "feed", feed_id)
        return FeedView(row, (await self.repo.running_counts([row.id])).get(row.id, 0))

    async def list_feeds(
        self, principal: Principal, requested: int, token: str
    ) -> tuple[list[FeedView], str]:
        rows, nxt = await self.repo.list_feeds(owner_scope(principal), requested, token)
        counts = await self.repo.running_counts([r.id for r in rows])
        return [FeedView(r, counts.get(r.id, 0)) for r in rows], nxt

    async def delete_feed(self, principal: Principal, feed_id: str) -> None:
        row = require_owner(principal, await self.repo.get_feed(feed_id), "feed", feed_id)
        if (await self.repo.running_counts([row.id])).get(row.id, 0):
            raise FailedPrecondition("strategies are running on this feed; stop them first")
        await self.repo.delete_feed(row.id)
        self.manager.forget_feed(row.id)

    async def push_bars(
        self, principal: Principal, batches: AsyncIterator[tuple[str, Sequence[LiveBar]]]
    ) -> PushOutcome:
        """Each batch is (feed_id, bars); the first names the feed, later ones may repeat it."""
        feed: models.Feed | None = None
        accepted = rejected = 0
        rejections: list[tuple[int, LiveBar, str]] = []
        index = 0
        async for feed_id, bars in batches:
            if feed is None:
                if not feed_id:
                    raise InvalidArgument.field("feed_id", "required in the first message")
                feed = require_owner(principal, await self.repo.get_feed(feed_id), "feed", feed_id)
                if feed.kind != "push":
                    raise FailedPrecondition("bars can only be pushed to a push feed")
            elif feed_id and feed_id != feed.id:
                raise InvalidArgument.field("feed_id", "one upload pushes to one feed")
            if len(bars) > MAX_PUSH_BATCH:
                raise InvalidArgument.field("bars", f"at most {MAX_PUSH_BATCH} bars per message")
            out = await self.manager.push(feed, bars, index)
            index += len(bars)
            accepted += out.accepted
            rejected += out.rejected
            rejections.extend(out.rejections[: max(0, 100 - len(rejections))])
        if feed is None:
            raise InvalidArgument.field("feed_id", "no message received")
        return PushOutcome(accepted, rejected, tuple(rejections))

    # -- runs ----------------------------------------------------------------------------

    async def start(self, principal: Principal, req: StartRequest) -> str:
        """Starts paper trading; returns the strategy id (the servicer re-reads it)."""
        _check_start(req)
        async with self.db.session() as s:
            strat = await load_strategy(s, principal, req.strategy_id, Access.EXECUTE)
            members: list[tuple[str, dict[str, object], float]] = []
            definitions: dict[str, dict[str, object]] = {}
            if strat.strategy_type == ENSEMBLE_TYPE:
                for m in strat.ensemble_members:
                    member = await load_strategy(s, principal, m["strategy_id"], Access.READ)
                    members.append(
                        (member.strategy_type, dict(member.parameters), float(m.get("weight", 1.0)))
                    )
                    definitions.update(await _definitions(s, member))
            else:
                definitions.update(await _definitions(s, strat))
        if strat.status == "archived":
            raise FailedPrecondition("an archived strategy cannot run; make it active first")
        latest = await self.repo.latest_run(strat.id)
        if latest is not None and latest.status == "running":
            raise FailedPrecondition("this strategy is already running; stop it first")
        feed, start_index = await self._feed_for(principal, req)
        symbol = (req.symbol or "").strip().upper() or (
            feed.symbols[0] if len(feed.symbols) == 1 else ""
        )
        if not symbol:
            raise InvalidArgument.field("symbol", "the feed carries several symbols: name one")
        if symbol not in feed.symbols:
            raise InvalidArgument.field("symbol", f"the feed carries {', '.join(feed.symbols)}")
        if req.warmup_bars:
            await self._check_warmup(feed, symbol, start_index, req.warmup_bars)
        stored = ExecutionOptions.from_dict(strat.execution)
        execution = req.execution.over(stored) if req.execution else stored
        spec = RunSpec(
            strategy_id=strat.id,
            owner_id=strat.owner_id,
            strategy_name=strat.name,
            feed_id=feed.id,
            symbol=symbol,
            strategy_type=strat.strategy_type,
            parameters=dict(strat.parameters),
            execution=execution.resolved(),
            members=tuple((t, p, w) for t, p, w in members),
            method=strat.ensemble_method or "weighted_vote",
            alert_rules=tuple(dict(r) for r in strat.alert_rules),
            warmup_bars=req.warmup_bars,
            start_index=start_index,
            definitions=definitions,
        )
        await self.manager.start_run(spec, feed)
        return strat.id

    async def stop(self, principal: Principal, strategy_id: str, close_position: bool) -> str:
        async with self.db.session() as s:
            strat = await load_strategy(s, principal, strategy_id, Access.EXECUTE)
        latest = await self.repo.latest_run(strat.id)
        if latest is None or latest.status != "running":
            raise FailedPrecondition("this strategy is not running")
        if not await self.manager.stop_run(strat.id, close_position=close_position):
            raise FailedPrecondition(
                "this strategy runs on another server; stop it there (or after it resumes)"
            )
        return strat.id

    async def performance(self, principal: Principal, strategy_id: str) -> PerformanceView:
        await self._readable(principal, strategy_id)
        view = await self.manager.performance(strategy_id)
        if view is None:
            raise FailedPrecondition("this strategy has never run; start it first")
        return view

    async def events(
        self, principal: Principal, strategy_id: str, kind: Kind, requested: int, token: str
    ) -> tuple[list[LiveEvent], str]:
        """Stored events oldest first, paged by sequence."""
        await self._readable(principal, strategy_id)
        size = page_size(requested, default=100, maximum=1000)
        qhash = query_hash(s=strategy_id, k=kind)
        cursor = decode_token(token, qhash)
        after = token_int(cursor.key) if cursor else 0
        events = await self.manager.history(strategy_id, kind, after, size + 1)
        if len(events) <= size:
            return events, ""
        events = events[:size]
        return events, encode_token(Cursor(events[-1].sequence, strategy_id), qhash)

    async def stream(
        self, principal: Principal, strategy_id: str, kind: Kind, after: int
    ) -> AsyncIterator[Delivery[LiveEvent]]:
        """Checks access before the first event, then streams (see LiveManager.subscribe)."""
        if after < 0:
            raise InvalidArgument.field("after_sequence", "must not be negative")
        await self._readable(principal, strategy_id)
        latest = await self.repo.latest_run(strategy_id)
        if latest is None:
            raise FailedPrecondition("this strategy has never run; start it first")
        running = latest.status == "running"
        if not running and after == 0:
            raise FailedPrecondition(
                "this strategy is not running; give after_sequence to read what it recorded"
            )
        newest = self.manager.last_sequence_here(strategy_id, kind)
        if newest is not None and after > newest + MAX_UNSTORED_AHEAD:
            # It would wait for events numbered above a sequence it never sent. (Slightly
            # ahead is fine: events published before a crash come again after the restart.)
            raise InvalidArgument.field(
                "after_sequence", f"{after} is after the newest {kind} sequence ({newest})"
            )
        return self.manager.subscribe(strategy_id, kind, after)

    async def _check_warmup(
        self, feed: models.Feed, symbol: str, start_index: int, wanted: int
    ) -> None:
        """Warm-up bars come before the first traded bar: refuse more than there are."""
        if feed.kind == "replay":
            # A replay running here goes on from where it is (see LiveManager.start_run).
            available = self.manager.replay_position(feed.id) or start_index
            where = "before the replay's next bar (a later start_time leaves more)"
        else:
            available = await self.repo.count_feed_bars(feed.id, symbol)
            where = f"of {symbol} pushed to this feed so far"
        if wanted > available:
            raise InvalidArgument.field("warmup_bars", f"only {available} bars {where}")

    async def _readable(self, principal: Principal, strategy_id: str) -> None:
        if not strategy_id:
            raise InvalidArgument.field("strategy_id", "required")
        async with self.db.session() as s:
            await load_strategy(s, principal, strategy_id, Access.READ)

    async def _feed_for(self, principal: Principal, req: StartRequest) -> tuple[models.Feed, int]:
        if req.feed_id:
            feed = require_owner(
                principal, await self.repo.get_feed(req.feed_id), "feed", req.feed_id
            )
            start = 0
            if feed.kind == "replay":
                _, bars = await self.datasets.load(principal, feed.dataset_id)
                start = int(bars.ts.searchsorted(feed.start_ts, side="left"))
            return feed, start
        dataset, bars = await self.datasets.load(principal, req.dataset_id)
        start = int(bars.ts.searchsorted(req.start_ns, side="left")) if req.start_ns else 0
        if start >= len(bars):
            raise InvalidArgument.field("start_time", "after the dataset's last bar")
        feed = models.Feed(
            id=models.new_id(),
            owner_id=principal.user_id,
            kind="replay",
            display_name=f"replay of {dataset.name}",
            symbols=[dataset.symbol.upper()],
            timeframe=dataset.timeframe,
            dataset_id=dataset.id,
            start_ts=int(bars.ts[start]),
            bars_per_second=req.bars_per_second,
        )
        await self.repo.add_feed(feed)
        return feed, start


def _check_start(req: StartRequest) -> None:
    v: list[FieldViolation] = []
    if not req.strategy_id:
        v.append(FieldViolation("strategy_id", "required"))
    if bool(req.dataset_id) == bool(req.feed_id):
        v.append(FieldViolation("dataset_id", "give exactly one of dataset_id and feed_id"))
    if req.feed_id and req.start_ns:
        v.append(FieldViolation("start_time", "a feed has its own start; only for dataset_id"))
    if req.feed_id and req.bars_per_second:
        v.append(FieldViolation("bars_per_second", "a feed has its own speed; only for dataset_id"))
    if not 0 <= req.bars_per_second <= MAX_BARS_PER_SECOND:
        v.append(FieldViolation("bars_per_second", f"0..{MAX_BARS_PER_SECOND:g} (0 = unpaced)"))
    if not 0 <= req.warmup_bars <= MAX_WARMUP_BARS:
        v.append(FieldViolation("warmup_bars", f"0..{MAX_WARMUP_BARS}"))
    if v:
        raise InvalidArgument.of(v)


def _feed_violations(d: FeedDraft) -> list[FieldViolation]:
    v: list[FieldViolation] = []
    if d.kind not in FEED_KINDS:
        v.append(FieldViolation("feed.kind", "FEED_KIND_PUSH or FEED_KIND_REPLAY"))
    if len(d.display_name) > 100:
        v.append(FieldViolation("feed.display_name", "at most 100 characters"))
    if d.timeframe and not TIMEFRAME.match(d.timeframe):
        v.append(FieldViolation("feed.timeframe", "a number and a unit s/m/h/d/w, e.g. 1m"))
    if not 0 <= d.bars_per_second <= MAX_BARS_PER_SECOND:
        v.append(FieldViolation("feed.bars_per_second", f"0..{MAX_BARS_PER_SECOND:g}"))
    if d.kind == "push":
        symbols = [s.strip().upper() for s in d.symbols]
        if not symbols:
            v.append(FieldViolation("feed.symbols", "a push feed names its symbols"))
        if len(symbols) > MAX_SYMBOLS:
            v.append(FieldViolation("feed.symbols", f"at most {MAX_SYMBOLS} symbols"))
        for i, s in enumerate(symbols):
            if not SYMBOL.match(s):
                v.append(FieldViolation(f"feed.symbols[{i}]", "1-32 of A-Z 0-9 . _ : / ! -"))
        if d.dataset_id:
            v.append(FieldViolation("feed.dataset_id", "only for a replay feed"))
    if d.kind == "replay" and not d.dataset_id:
        v.append(FieldViolation("feed.dataset_id", "required for a replay feed"))
    return v


async def _definitions(s: AsyncSession, strat: models.Strategy) -> dict[str, dict[str, object]]:
    """{type name: TypeSource dict} when the strategy's type is a user type (as its owner sees
    it, services/type_resolution.py), so the run carries its definition; {} for a built-in."""
    if not is_user_type(strat.strategy_type):
        return {}
    try:
        found = await resolve_in(s, strat.strategy_type, user_id=strat.owner_id)
    except KeyError:
        raise FailedPrecondition(
            f"strategy {strat.name!r} uses strategy type {strat.strategy_type!r}, "
            "which is no longer available to its owner"
        ) from None
    assert found.source is not None
    # The definition may have been updated since the strategy was saved.
    problems = found.stype.validate(strat.parameters)
    if problems:
        raise FailedPrecondition(
            f"strategy {strat.name!r} has parameters its type no longer accepts ("
            + "; ".join(f"{v.field}: {v.description}" for v in problems)
            + "); update them first"
        )
    return {strat.strategy_type: found.source.to_dict()}
