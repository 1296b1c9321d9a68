"""Every call to Telegram: flood limits honoured, passing network trouble tried again.

PTB's ``AIORateLimiter`` already waits out a 429 ``RetryAfter`` and paces calls. On top of it, a
call that fails with a network error (a timeout, a broken connection, Telegram answering 5xx) is
tried again a few times with growing, jittered waits. If it still fails, the error reaches the
handler and the error handler, and the inbox tries the whole update again later.

A timeout can hide a message that did arrive. For an ordinary reply, a rare duplicate is better
than silence. Broadcasts choose the other way (never twice): the outbox sends inside
``without_network_retries()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import random
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from telegram.error import BadRequest, NetworkError
from telegram.ext import AIORateLimiter

logger = logging.getLogger(__name__)

_RETRY_NETWORK = contextvars.ContextVar("retry_network", default=True)
JSONDict = dict[str, Any]


@contextlib.contextmanager
def without_network_retries() -> Iterator[None]:
    """Calls made inside fail at the first network error (the caller decides what it means)."""
    token = _RETRY_NETWORK.set(False)
    try:
        yield
    finally:
        _RETRY_NETWORK.reset(token)


class RetryingRateLimiter(AIORateLimiter):
    """``AIORateLimiter`` plus retries with backoff for network errors."""

    def __init__(
        self,
        *,
        network_retries: int = 3,
        first_wait: float = 0.5,
        sleep: Callable[[float], Coroutine[Any, Any, None]] = asyncio.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.network_retries = network_retries
        self.first_wait = first_wait
        self._sleep = sleep

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | JSONDict | list[JSONDict]:
        attempt = 0
        while True:
            try:
                return await super().process_request(
                    callback, args, kwargs, endpoint, data, rate_limit_args
                )
            except BadRequest:
                raise  # refused for good: asking again gets the same answer
            except NetworkError as exc:
                if not _RETRY_NETWORK.get() or attempt >= self.network_retries:
                    raise
                attempt += 1
                wait = self.first_wait * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)  # noqa: S311
                logger.warning(
                    "%s failed (%s); attempt %s in %.1f s", endpoint, exc, attempt + 1, wait
                )
                await self._sleep(wait)
