"""How the bot talks HTTP to the Bot API: aiohttp instead of PTB's default httpx.

python-telegram-bot leaves the transport to a ``BaseRequest`` subclass. Its default (httpx) costs
about 3.5 ms of CPU per request under load; about half of that is httpcore's connection pool
checking every pooled connection on every request. The bot sends at least one message for every
update, so this was the largest single cost per update (``bench/load.py``). aiohttp is already
here for the webhook server. Requests without files are sent as a JSON body (one of the Bot
API's four ways of passing parameters), with files as multipart form fields the way PTB's httpx
transport sends them; errors become PTB's ``TimedOut``/``NetworkError``, so retries and the error
handler work unchanged.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

# PTB's defaults for its own transport (seconds).
READ_TIMEOUT = 5.0
CONNECT_TIMEOUT = 5.0
POOL_TIMEOUT = 1.0
# Sending a file may take longer than a message.
MEDIA_WRITE_TIMEOUT = 20.0


class AiohttpRequest(BaseRequest):
    """``BaseRequest`` over one pooled ``aiohttp.ClientSession``."""

    __slots__ = ("_connections", "_proxies", "_read_timeout", "_session")

    def __init__(self, connections: int = 256, read_timeout: float = READ_TIMEOUT) -> None:
        self._connections = connections
        self._read_timeout = read_timeout
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[str, str] = {}

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections),
                timeout=aiohttp.ClientTimeout(total=None),
                headers={"User-Agent": self.USER_AGENT},
                # Proxies from the environment are read once here (below), not on every request.
                trust_env=False,
            )
            self._proxies = urllib.request.getproxies()

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        read = _given(read_timeout, self._read_timeout)
        connect = _given(connect_timeout, CONNECT_TIMEOUT)
        pool = _given(pool_timeout, POOL_TIMEOUT)
        data: aiohttp.FormData | bytes | None = None
        headers: dict[str, str] = {}
        total: float | None = None
        if request_data is not None and request_data.contains_files:
            form = aiohttp.FormData(request_data.json_parameters)
            for name, (filename, content, mime) in request_data.multipart_data.items():
                form.add_field(name, content, filename=filename, content_type=mime)
            data = form
            write = _given(write_timeout, MEDIA_WRITE_TIMEOUT)
            total = None if write is None or read is None else write + read + (connect or 0)
        elif request_data is not None:
            # A JSON body, which the Bot API takes for every call without files: objects such
            # as buttons as they are, and one C-level encoding instead of percent-encoding the
            # text byte by byte (a third of the cost of sending an article under load).
            data = json.dumps(request_data.parameters, ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        timeout = aiohttp.ClientTimeout(
            total=total,
            connect=None if pool is None or connect is None else pool + connect,
            sock_connect=connect,
            sock_read=read,
        )
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=timeout, proxy=self._proxy(url)
            ) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut(f"aiohttp: {exc.__class__.__name__}") from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{exc.__class__.__name__}: {exc}") from exc

    def _proxy(self, url: str) -> str | None:
        """The proxy the environment names for ``url`` (HTTPS_PROXY, NO_PROXY …), if any."""
        if not self._proxies:
            return None
        parts = urllib.parse.urlsplit(url)
        if urllib.request.proxy_bypass(parts.hostname or ""):
            return None
        return self._proxies.get(parts.scheme)


def _given(value: ODVInput[float], default: float | None) -> float | None:
    if isinstance(value, DefaultValue):
        return default
    return value
