"""Outermost interceptor: every failure leaves as a proper status, and every call is logged.

Domain errors become rich statuses; so do outages that are not bugs: a disk that refuses a
write (RESOURCE_EXHAUSTED) and whatever `translate` recognises, such as a database that cannot
be reached (UNAVAILABLE with a retry hint; the server wires store/outages.py in, since api/
may not know SQL). Anything else is a bug, logged with a stack trace under a reference id and
answered INTERNAL without detail (never a Python traceback on the wire).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from grpc_interceptor import AsyncServerInterceptor

from stratopt.api.context import optional_principal
from stratopt.api.status import internal_status, to_grpc_status
from stratopt.errors import StratoptError, clip, storage_full

log = logging.getLogger("stratopt.rpc")
LOG_DETAIL_MAX = 500

Translate = Callable[[BaseException], StratoptError | None]
"""Recognises an infrastructure failure and names it as the error a client should see."""


def _no_translation(_exc: BaseException) -> StratoptError | None:
    return None


class ErrorInterceptor(AsyncServerInterceptor):
    def __init__(self, translate: Translate = _no_translation) -> None:
        self.translate = translate

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext,
        method_name: str,
    ) -> Any:
        start = time.perf_counter()
        try:
            result = method(request_or_iterator, context)
            if hasattr(result, "__aiter__"):
                return self._stream(result, context, method_name, start)
            response = await result
        except Exception as exc:
            await self._abort(exc, context, method_name, start)
            raise  # unreachable: abort raises
        _log_call(method_name, "OK", start)
        return response

    async def _stream(
        self,
        gen: AsyncIterator[Any],
        context: grpc.aio.ServicerContext,
        method_name: str,
        start: float,
    ) -> AsyncIterator[Any]:
        try:
            async for item in gen:
                yield item
        except Exception as exc:
            await self._abort(exc, context, method_name, start)
        _log_call(method_name, "OK", start)

    async def _abort(
        self, exc: BaseException, context: grpc.aio.ServicerContext, method_name: str, start: float
    ) -> None:
        if not isinstance(exc, StratoptError) and (known := self._known(exc)) is not None:
            log.warning("%s in %s: %s", known.code_name, method_name, clip(repr(exc), 300))
            exc = known
        if isinstance(exc, StratoptError):
            _log_call(method_name, exc.code_name, start, detail=clip(exc.message, LOG_DETAIL_MAX))
            trailers = _trailers(context)
            await context.abort_with_status(to_grpc_status(exc, trailers))
        code = context.code() if hasattr(context, "code") else None
        if isinstance(exc, grpc.aio.AbortError) or (code not in (None, grpc.StatusCode.OK)):
            # Already aborted deliberately (e.g. by a nested abort): let it through as is.
            raise exc
        log.exception("unhandled error in %s", method_name)
        _log_call(method_name, "INTERNAL", start)
        await context.abort_with_status(internal_status())

    def _known(self, exc: BaseException) -> StratoptError | None:
        """The outage behind `exc` (or behind what it was raised `from`), if it is one."""
        seen: BaseException | None = exc
        for _ in range(5):  # a short chain: wrappers of wrappers are not worth chasing
            if seen is None:
                return None
            if (known := storage_full(seen) or self.translate(seen)) is not None:
                return known
            seen = seen.__cause__
        return None


def _trailers(context: grpc.aio.ServicerContext) -> tuple[tuple[str, Any], ...]:
    get = getattr(context, "trailing_metadata", None)
    try:
        return tuple(get() or ()) if get else ()
    except Exception:  # metadata is best effort; the status is what matters
        return ()


def _log_call(method: str, outcome: str, start: float, detail: str = "") -> None:
    if not log.isEnabledFor(logging.INFO):
        return  # every call passes here: skip building a record nobody writes
    p = optional_principal()
    log.info(
        "rpc",
        extra={
            "rpc": method,
            "outcome": outcome,
            "ms": round((time.perf_counter() - start) * 1000, 2),
            "user": p.username if p else "",
            "detail": detail,
        },
    )
