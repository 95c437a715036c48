"""The event-loop Redis client's wire format (slipway.features.resp): what it writes, how it reads replies that
arrive whole, split or several at once, and which connection strings it leaves to redis-py. Against a real
redis-server: tests/integration/test_serving_features.py."""

from __future__ import annotations

import asyncio

import pytest

from slipway.features.resp import (
    AsyncRedis,
    Fields,
    RedisAddress,
    RedisReplyError,
    encode,
    hmget,
    parse_connection_string,
    parse_reply,
)


def test_a_command_is_a_resp_array_of_bulk_strings() -> None:
    assert encode(b"HMGET", b"k\r\n", b"") == b"*3\r\n$5\r\nHMGET\r\n$3\r\nk\r\n\r\n$0\r\n\r\n"


def test_replies_parse_whole_and_say_when_they_are_incomplete() -> None:
    reply = b"*3\r\n$3\r\nab\n\r\n$-1\r\n$0\r\n\r\n"
    assert parse_reply(reply, 0) == ([b"ab\n", None, b""], len(reply))
    for cut in range(len(reply)):  # a reply split anywhere by the socket waits for the rest
        assert parse_reply(reply[:cut], 0) is None
    two = b"+OK\r\n:7\r\n"
    assert parse_reply(two, 0) == (b"OK", 5) and parse_reply(two, 5) == (7, len(two))
    assert parse_reply(b"*-1\r\n", 0) == (None, 5)
    error, end = parse_reply(b"-WRONGTYPE Operation against a key\r\n", 0) or (None, 0)
    assert isinstance(error, RedisReplyError) and "WRONGTYPE" in str(error) and end == 36
    with pytest.raises(RedisReplyError):
        parse_reply(b"?what\r\n", 0)


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        ("127.0.0.1:6390", RedisAddress(host="127.0.0.1", port=6390)),
        (
            "redis.svc:6379,db=2,password=s3cret",
            RedisAddress(host="redis.svc", port=6379, db=2, password="s3cret"),
        ),
        ("h", RedisAddress(host="h", port=6379)),
        ("h:6379,ssl=true", None),  # TLS: redis-py on the lookup thread
        ("h:6379,socket_timeout=2", None),
        (":6379", None),
    ],
)
def test_connection_strings_this_client_can_follow(conn: str, expected: RedisAddress | None) -> None:
    assert parse_connection_string(conn) == expected


def test_a_refused_connection_fails_the_read_and_the_next_read_tries_again() -> None:
    async def go() -> list[type[BaseException]]:
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        server.close()
        await server.wait_closed()
        client = AsyncRedis(RedisAddress(host="127.0.0.1", port=port))
        kinds = []
        for _ in range(2):
            try:
                await client.hmget_many([(b"k", [b"f"])])
            except OSError as exc:
                kinds.append(type(exc))
        return kinds

    assert asyncio.run(go()) == [ConnectionRefusedError, ConnectionRefusedError]


def test_an_hmget_is_encoded_from_its_fields_once() -> None:
    fields = [b"\x01\x02", b"", b"f\r\n"]
    assert hmget(b"key\x00", Fields.of(fields)) == encode(b"HMGET", b"key\x00", *fields)
