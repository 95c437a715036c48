"""A minimal Redis client on the serving event loop: pipelined `HMGET`s over one connection, nothing else.

The serving path reads a Redis online store with one `HMGET` per entity (`slipway.features.direct`). Through
redis-py that read is a blocking socket call, so it runs on a lookup thread, and the hop there and back costs
about as much CPU as the read itself. This client speaks RESP2 (the protocol every Redis version answers) on an
`asyncio.Protocol` of the loop that serves: commands of concurrent requests are written as they come and the
replies, which Redis sends in order, resolve their futures in order. It only knows what that read needs:
`AUTH`, `SELECT`, `HMGET`; TLS, a Redis cluster or sentinel keep redis-py on the thread (`parse_connection_string`).
A lost connection fails the reads in flight (each caller answers 503) and the next read connects again.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

CONNECT_TIMEOUT_S: Final = 5.0
REPLY_TIMEOUT_S: Final = 5.0  # like redis-py's socket_timeout in slipway.features.feast_repo.redis_client
Reply = list["bytes | None"] | bytes | int | None


class RedisReplyError(Exception):
    """Redis answered a command with an error reply (`-ERR ...`), or sent something this client cannot read."""


@dataclass(frozen=True)
class RedisAddress:
    """Where and as whom to connect, parsed from Feast's connection string `host:port[,db=N][,password=P]`."""

    host: str
    port: int
    db: int = 0
    password: str | None = None
    username: str | None = None


def split_connection_string(conn: str) -> tuple[str, str, dict[str, Any]]:
    """Pure; Feast's `host:port,key=value,...` as host, port text (may be empty) and options (JSON values decoded,
    others kept as text): what redis-py's client and this one are built from."""
    parts = conn.split(",")
    host, _, port = parts[0].partition(":")
    options: dict[str, Any] = {}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return host, port, options


def parse_connection_string(conn: str) -> RedisAddress | None:
    """Pure; Feast's `host:port,db=N,password=...` as a RedisAddress, None when it asks for more than this client
    does (ssl, timeouts, any other option): the caller keeps redis-py."""
    host, port, options = split_connection_string(conn)
    if not host or set(options) - {"db", "password", "username"}:
        return None
    try:
        db = int(options.get("db", 0))
        number = int(port or 6379)
    except (ValueError, TypeError):
        return None
    password, username = options.get("password"), options.get("username")
    return RedisAddress(
        host=host,
        port=number,
        db=db,
        password=None if password is None else str(password),
        username=None if username is None else str(username),
    )


def encode(*args: bytes) -> bytes:
    """Pure; one command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n%s\r\n" % (len(arg), arg))
    return b"".join(out)


def parse_reply(buf: bytes | bytearray, pos: int) -> tuple[Reply | RedisReplyError, int] | None:
    """Pure; the reply starting at `pos` and the position after it, or None while it is incomplete. Bulk strings
    are bytes (nil: None), arrays lists of them, `+OK` bytes, integers int, `-ERR` a RedisReplyError value."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    kind, line = buf[pos : pos + 1], bytes(buf[pos + 1 : end])
    after = end + 2
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, after
        if len(buf) < after + size + 2:
            return None
        return bytes(buf[after : after + size]), after + size + 2
    if kind == b"*":
        count = int(line)
        if count < 0:
            return None, after
        items: list[bytes | None] = []
        for _ in range(count):
            parsed = parse_reply(buf, after)
            if parsed is None:
                return None
            item, after = parsed
            if not (item is None or isinstance(item, bytes)):
                return RedisReplyError(f"unexpected nested reply {item!r}"), after
            items.append(item)
        return items, after
    if kind == b"+":
        return line, after
    if kind == b":":
        return int(line), after
    if kind == b"-":
        return RedisReplyError(line.decode("utf-8", "replace")), after
    raise RedisReplyError(f"unreadable reply type {kind!r}")


@dataclass(frozen=True)
class Fields:
    """The fields of an `HMGET`, encoded once (a service reads the same fields of every entity)."""

    count: int
    encoded: bytes

    @classmethod
    def of(cls, fields: Sequence[bytes]) -> Fields:
        """Pure; `fields` as the tail of an HMGET command."""
        return cls(len(fields), encode(*fields).split(b"\r\n", 1)[1] if fields else b"")


def hmget(key: bytes, fields: Fields) -> bytes:
    """Pure; `HMGET key field...` as RESP (= encode(b"HMGET", key, *fields))."""
    return b"*%d\r\n$5\r\nHMGET\r\n$%d\r\n%s\r\n%s" % (fields.count + 2, len(key), key, fields.encoded)


class _Protocol(asyncio.Protocol):
    """Replies in order to the futures of the commands written, in order. Commands sent in one loop iteration
    go out in one write; a reply Redis owes for longer than REPLY_TIMEOUT_S fails every read in flight."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[tuple[asyncio.Future[Reply], float]] = deque()
        self.buffer = bytearray()
        self.lost: Exception | None = None
        self._corked: list[bytes] = []
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's is no subclass)

    def send(self, data: bytes, futures: Sequence[asyncio.Future[Reply]]) -> None:
        """Non-blocking; `data` written at the end of this loop iteration, its replies owed to `futures`."""
        loop = asyncio.get_running_loop()
        if not self._corked:
            loop.call_soon(self._flush)
        self._corked.append(data)
        now = loop.time()
        self.waiting.extend((f, now) for f in futures)
        if self._watchdog is None:
            self._watchdog = loop.call_later(REPLY_TIMEOUT_S, self._check)

    def _flush(self) -> None:
        data, self._corked = b"".join(self._corked), []
        if self.transport is not None and self.lost is None:
            self.transport.write(data)

    def _check(self) -> None:
        self._watchdog = None
        if not self.waiting:
            return
        loop = asyncio.get_running_loop()
        age = loop.time() - self.waiting[0][1]
        if age >= REPLY_TIMEOUT_S:  # replies may still come: they would answer the wrong futures
            self.abort(TimeoutError(f"Redis owes a reply for {age:.1f} s (limit {REPLY_TIMEOUT_S} s)"))
            return
        self._watchdog = loop.call_later(REPLY_TIMEOUT_S - age, self._check)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        pos = 0
        try:
            while self.waiting:
                parsed = parse_reply(self.buffer, pos)
                if parsed is None:
                    break
                reply, pos = parsed
                future = self.waiting.popleft()[0]
                if future.done():
                    continue
                if isinstance(reply, RedisReplyError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except (RedisReplyError, ValueError) as exc:  # the stream cannot be followed any more
            self.abort(RedisReplyError(f"unreadable reply from Redis: {exc}"))
            return
        del self.buffer[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"Redis connection lost: {exc or 'closed by the server'}"))

    def abort(self, exc: Exception) -> None:
        """Fails every read in flight with `exc` and closes the connection (the next read opens another)."""
        self._fail(exc)
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        if self.lost is None:
            self.lost = exc
        while self.waiting:
            future = self.waiting.popleft()[0]
            if not future.done():
                future.set_exception(exc)


class AsyncRedis:
    """One connection on the running loop, opened on first use and again after it is lost; not thread-safe (the
    loop's own thread only)."""

    def __init__(self, address: RedisAddress) -> None:
        self.address = address
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    async def hmget_many(self, commands: Sequence[tuple[bytes, Fields]]) -> list[list[bytes | None]]:
        """Non-blocking (awaits Redis); the values of each (key, fields) `HMGET`, pipelined with every other read
        of this loop iteration; the connection's or Redis's error (ConnectionError, TimeoutError after
        REPLY_TIMEOUT_S, RedisReplyError) when it fails."""
        protocol = await self._connection()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        protocol.send(b"".join([hmget(key, fields) for key, fields in commands]), futures)
        out: list[list[bytes | None]] = []
        for future in futures:
            reply = await future
            if not isinstance(reply, list):
                raise RedisReplyError(f"HMGET answered {reply!r}")
            out.append(reply)
        return out

    def close(self) -> None:
        """Idempotent; closes the connection (reads in flight fail)."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None:
            protocol.abort(ConnectionError("Redis connection closed by the client"))

    async def _connection(self) -> _Protocol:
        protocol = self._protocol
        if protocol is not None and protocol.lost is None:
            return protocol
        self._protocol = None
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._connect())
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> _Protocol:
        a = self.address
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            _, protocol = await loop.create_connection(_Protocol, a.host, a.port)
            setup: list[bytes] = []
            if a.password is not None:
                user = [a.username.encode()] if a.username else []
                setup.append(encode(b"AUTH", *user, a.password.encode()))
            if a.db:
                setup.append(encode(b"SELECT", str(a.db).encode()))
            if setup:
                futures = [loop.create_future() for _ in setup]
                protocol.send(b"".join(setup), futures)
                try:
                    for future in futures:
                        await future
                except Exception:
                    if protocol.transport is not None:
                        protocol.transport.close()
                    raise
        self._protocol = protocol
        return protocol
