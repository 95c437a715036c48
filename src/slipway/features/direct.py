"""Online reads of a Feast feature service without Feast's request path: the same stored rows, ~10x cheaper.

`FeastFeatureStore.online` goes through Feast's `get_online_features`, which plans every request (registry
lookups, entity de-duplication, a response proto per feature, timestamps converted per value) around the online
store's read: ~0.4 ms of Python for one entity, several times the cost of the `/predict` call it feeds. The
serving path reads the rows where Feast's SQLite and Redis online stores keep them instead, with Feast's own
key serialization, table ids and field hashes, and decodes the values straight into the float32 matrix:

* SQLite: one query per entity over every view of the service (`UNION ALL`), each view's rows packed by
  `group_concat` into its names and its stored values end to end, on a read-only connection of this object's
  own (filtering the names in SQL costs more than skipping a view's other features after); an entity's decoded
  row is kept (up to ROW_CACHE) until `PRAGMA data_version` says another connection committed, so it is
  never stale;
* Redis: one `HMGET` of the service's hashed feature fields per entity and join-key group, pipelined; `aread`
  sends them from the serving event loop itself (`slipway.features.resp`), no lookup thread.
Values that are all float32 (each stored as a 5-byte ValueProto) decode in one numpy call; anything else (a
double, an integer, a null) value by value through protobuf (SQLite: the entity read again row by row).

The answer is `OnlineRows` as `FeastFeatureStore.online` gives it (NaN where a value is absent or null; `found`
only when every feature is present; Feast's online read applies no TTL, neither does this). A join-key value of
the wrong type (a string for an int64 key) is an entity not found. Only services read exactly like Feast reads
them qualify: batch feature views without aliases or join-key maps, no online feature-view versioning, int64,
int32 or string join keys, a SQLite or plain Redis online store; `direct_online` returns None (and why) for
anything else, and the caller keeps `store.online`. tests/integration/test_serving_features.py checks every
entity of the example against `FeastFeatureStore.online` on both stores.
"""

from __future__ import annotations

import functools
import math
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from slipway.features import feast_repo as fr
from slipway.features.base import FeatureStore, MissingKey, OnlineRows, check_keys
from slipway.features.feast_store import FeastFeatureStore
from slipway.features.resp import AsyncRedis, Fields, parse_connection_string

OnlineRead = Callable[[Sequence[Mapping[str, Any]]], OnlineRows]
_NUMERIC: Final = frozenset({"float_val", "double_val", "int32_val", "int64_val", "bool_val"})
KEY_CACHE: Final = 1 << 16  # serialized entity keys kept (a pure function of the key: never stale)
_NAME_SEP: Final = b"\x1f"  # char(31), between packed feature names
ROW_CACHE: Final = 1 << 17  # SQLite entity rows kept between commits of other connections (then: all dropped)
LAYOUTS: Final = 64  # SQLite row orders remembered (one in practice: features are written in one order)
# ValueProto field 6 (float_val), wire type 5 (32-bit), then the 4 bytes of the float, little-endian
_FLOAT_TAG: Final = b"\x35"
_KEY_FIELDS: Final = {"INT64": ("int64_val", int), "INT32": ("int32_val", int), "STRING": ("string_val", str)}


@dataclass(frozen=True)
class _Group:
    """Views sharing one join-key tuple: one stored entity key, every feature of theirs in one read."""

    keys: tuple[str, ...]  # join keys, sorted
    fields: tuple[tuple[str, Any], ...]  # (join key, the ValueProto field and Python type of its values)
    proto_fields: tuple[tuple[str, str], ...]  # (join key, its ValueProto field): hashable, for the key cache
    sql: str  # SQLite: (view index, feature_name, value) of one entity over the group's views
    packed_sql: str  # SQLite: (view index, its names joined, its values end to end) of one entity, per view
    views: tuple[str, ...]
    columns: tuple[dict[str, int], ...]  # per view: its projected features -> their column in the output
    redis_fields: tuple[bytes, ...]  # Redis: the hashed field of each feature, in `redis_columns` order
    redis_columns: tuple[int, ...]


def direct_online(store: FeatureStore) -> tuple[OnlineRead | None, str]:
    """Blocking (reads the registry; opens nothing yet); the direct read of `store`'s service and what it reads, or
    None and why Feast's own `store.online` must serve it."""
    if not isinstance(store, FeastFeatureStore):
        return None, f"{type(store).__name__}: not a Feast store"
    try:
        return _plan(store)
    except Exception as exc:  # a registry Feast reads differently: its own path is the safe one
        return None, f"not planned: {type(exc).__name__}: {exc}"


def _plan(store: FeastFeatureStore) -> tuple[OnlineRead | None, str]:
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _mmh3
    from feast.infra.online_stores.sqlite import _quote_id, _table_id
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    config, facts = store.config, store.facts
    if config.registry.enable_online_feature_view_versioning:
        return None, "online feature-view versioning is on"
    if facts.sqlite is None and facts.redis is None:
        return None, f"online store {facts.online_type!r} (direct reads: SQLite, plain Redis)"
    features = store.features()
    column = {name: j for j, name in enumerate(features)}
    by_keys: dict[tuple[tuple[str, Any], ...], list[Any]] = {}
    for projection in store.feast.get_feature_service(store.service_name).feature_view_projections:
        if projection.name_alias or projection.join_key_map:
            return None, f"view {projection.name!r} is projected with an alias or a join-key map"
        try:
            view = store.feast.get_feature_view(projection.name)
        except Exception:
            return (
                None,
                f"view {projection.name!r} is not a batch feature view (on-demand views run in Feast)",
            )
        key_fields = []
        for col in sorted(view.entity_columns, key=lambda c: c.name):
            kind = _KEY_FIELDS.get(col.dtype.to_value_type().name)
            if kind is None:
                return None, f"join key {col.name!r} of type {col.dtype} (direct reads: int64, int32, string)"
            key_fields.append((col.name, kind))
        by_keys.setdefault(tuple(key_fields), []).append((view, [f.name for f in projection.features]))
    groups = []
    for fields, views in by_keys.items():
        names = tuple(v.name for v, _ in views)
        tables = [_quote_id(_table_id(config.project, v, False)) for v, _ in views]
        sql = " UNION ALL ".join(
            f"SELECT {k}, feature_name, value FROM {t} WHERE entity_key = ?1" for k, t in enumerate(tables)
        )
        packed_sql = " UNION ALL ".join(
            f"SELECT {k}, group_concat(feature_name, char(31)), group_concat(value, '') FROM {t} "
            "WHERE entity_key = ?1"
            for k, t in enumerate(tables)
        )
        columns = tuple({f: column[f] for f in fs} for _, fs in views)
        pairs = [(_mmh3(f"{v.name}:{f}"), column[f]) for v, fs in views for f in fs]
        groups.append(
            _Group(
                keys=tuple(name for name, _ in fields),
                fields=tuple(fields),
                proto_fields=tuple((name, field) for name, (field, _) in fields),
                sql=sql,
                packed_sql=packed_sql,
                views=names,
                columns=columns,
                redis_fields=tuple(h for h, _ in pairs),
                redis_columns=tuple(j for _, j in pairs),
            )
        )
    version = config.entity_key_serialization_version
    suffix = config.project.encode() if facts.redis is not None else b""

    @functools.lru_cache(maxsize=KEY_CACHE)
    def serialized(fields: tuple[tuple[str, str], ...], values: tuple[Any, ...]) -> bytes:
        protos = [Value(**{field: v}) for (_, field), v in zip(fields, values, strict=True)]
        key = EntityKey(join_keys=[name for name, _ in fields], entity_values=protos)
        return serialize_entity_key(key, entity_key_serialization_version=version) + suffix

    def stored_key(group: _Group, row: Mapping[str, Any]) -> bytes | None:
        values = tuple(row[name] for name, _ in group.fields)
        for value, (_, (_, kind)) in zip(values, group.fields, strict=True):
            if type(value) is not kind:  # a bool is no int64: the entity cannot be stored under it
                return None
        return serialized(group.proto_fields, values)

    join_keys = store.entity_keys()
    reader = _SqliteRead if facts.sqlite is not None else _RedisRead
    read = reader(store, groups=tuple(groups), stored_key=stored_key, join_keys=join_keys, features=features)
    where = f"SQLite {facts.sqlite}" if facts.sqlite is not None else f"Redis {facts.online_id}"
    return read, f"direct {where}, {len(groups)} read(s) per entity"


class _DirectRead:
    """Shared by both stores: keys checked, values decoded into the float32 matrix, missing rows reported."""

    def __init__(
        self,
        store: FeastFeatureStore,
        *,
        groups: tuple[_Group, ...],
        stored_key: Callable[[_Group, Mapping[str, Any]], bytes | None],
        join_keys: tuple[str, ...],
        features: tuple[str, ...],
    ) -> None:
        from feast.protos.feast.types.Value_pb2 import Value

        self.store, self.groups, self.stored_key = store, groups, stored_key
        self.join_keys, self.features = join_keys, features
        self.parse = Value.FromString

    def __call__(self, keys: Sequence[Mapping[str, Any]]) -> OnlineRows:
        rows, values = self.blank(keys)
        self.fill(values, rows)
        return self.answer(values, rows)

    def blank(self, keys: Sequence[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], np.ndarray]:
        """Pure; the checked keys and their all-NaN matrix, for `fill` to write into."""
        rows = check_keys(keys, join_keys=self.join_keys)
        return rows, np.full((len(rows), len(self.features)), np.nan, dtype=np.float32)

    def answer(self, values: np.ndarray, rows: list[dict[str, Any]]) -> OnlineRows:
        """Pure; the filled matrix as OnlineRows (an entity with any feature absent is missing, named)."""
        absent = np.isnan(values)
        if not absent.any():  # the common case: every entity found
            return OnlineRows(
                features=self.features, values=values, found=np.ones(len(rows), bool), missing=()
            )
        present = ~absent
        found: np.ndarray = np.asarray(present.all(axis=1), dtype=bool)
        missing = tuple(
            MissingKey(
                int(i), rows[i], tuple(f for f, ok in zip(self.features, present[i], strict=True) if not ok)
            )
            for i in np.flatnonzero(~found)
        )
        return OnlineRows(features=self.features, values=values, found=found, missing=missing)

    def fill(self, values: np.ndarray, rows: list[dict[str, Any]]) -> None:
        """Blocking (one online-store read); writes each found value into `values`."""
        raise NotImplementedError

    def put(self, out: np.ndarray, columns: Sequence[int], raws: Sequence[bytes | None]) -> None:
        """Decodes stored ValueProtos into `out` (one row) at `columns`: all float32 in one numpy call, else one
        by one."""
        n = len(raws)
        if n and None not in raws:
            blob = b"".join(raws)  # type: ignore[arg-type]  # no None: checked
            if len(blob) == 5 * n and blob[::5] == _FLOAT_TAG * n:
                out[list(columns)] = (
                    np.frombuffer(blob, dtype=np.uint8).reshape(n, 5)[:, 1:].copy().view("<f4")[:, 0]
                )
                return
        for j, raw in zip(columns, raws, strict=True):
            out[j] = self.number(raw)

    def number(self, raw: bytes | None) -> float:
        """A stored ValueProto as a float (NaN: absent or null); FeatureStoreError when not numeric."""
        if not raw:
            return math.nan
        value = self.parse(raw)
        kind = value.WhichOneof("val")
        if kind is None or kind == "null_val":
            return math.nan
        if kind not in _NUMERIC:
            from slipway.errors import FeatureStoreError

            raise FeatureStoreError(
                f"a feature of {self.store.service_name!r} is not numeric online ({kind})"
            )
        return float(getattr(value, kind))


class _SqliteRead(_DirectRead):
    """Feast's SQLite online store: a table per view, one row per (entity_key, feature_name).

    One query per entity packs each view's rows into one: the names joined by \\x1f and the stored values end to
    end (`group_concat` over the same rows, so in the same order). When every value is a 5-byte float32
    ValueProto the row decodes in one strided numpy view; otherwise (another type, a null, an empty value) the
    entity is read again row by row and each value parsed by protobuf."""

    def __init__(self, store: FeastFeatureStore, **kw: Any) -> None:
        super().__init__(store, **kw)
        assert store.facts.sqlite is not None
        self._path = store.facts.sqlite
        self._conn: sqlite3.Connection | None = None
        # (view index, packed names) -> (output columns, which packed values they take or None: all, count)
        self._layouts: dict[tuple[int, bytes], tuple[np.ndarray, np.ndarray | None, int]] = {}
        # (group index, stored key) -> (output columns, their values): exact while PRAGMA data_version holds
        self._rows: dict[tuple[int, bytes], tuple[np.ndarray, np.ndarray]] = {}
        self._version: int | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:  # read-only, one per reader; the server reads from one thread at a time
            uri = f"{self._path.resolve().as_uri()}?mode=ro"  # percent-encoded: any file name
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            conn.text_factory = bytes  # packed values are text to SQLite: keep their bytes as they are
            self._conn = conn
        return self._conn

    def fill(self, values: np.ndarray, rows: list[dict[str, Any]]) -> None:
        conn = self._connect()
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version != self._version:  # another connection committed (a materialization): forget every row
            self._version = version
            self._rows.clear()
        for g, group in enumerate(self.groups):
            for i, row in enumerate(rows):
                key = self.stored_key(group, row)
                if key is None:
                    continue
                cached = self._rows.get((g, key))
                if cached is None:
                    fresh = np.full(values.shape[1], np.nan, dtype=np.float32)
                    self._read(conn, group, key, fresh)
                    written = np.flatnonzero(~np.isnan(fresh))
                    cached = (written, fresh[written])
                    if len(self._rows) >= ROW_CACHE:
                        self._rows.clear()
                    self._rows[(g, key)] = cached
                values[i, cached[0]] = cached[1]

    def _read(self, conn: sqlite3.Connection, group: _Group, key: bytes, out: np.ndarray) -> None:
        """One entity's stored rows of one join-key group, decoded into `out`."""
        for view, names, blob in conn.execute(group.packed_sql, (key,)).fetchall():
            if names is None:  # no row of this entity in this view
                continue
            cols, keep, n = self._layout(group, view, names)
            if len(blob) != 5 * n or blob[::5] != _FLOAT_TAG * n:
                self._by_row(conn, group, key, out)
                break
            packed = np.ndarray((n,), dtype="<f4", buffer=blob, offset=1, strides=(5,))
            out[cols] = packed if keep is None else packed[keep]

    def _by_row(self, conn: sqlite3.Connection, group: _Group, key: bytes, out: np.ndarray) -> None:
        """The entity's rows one by one, each value parsed by protobuf (any numeric type, nulls)."""
        for view, name, raw in conn.execute(group.sql, (key,)).fetchall():
            j = group.columns[view].get(name.decode())
            if j is not None:
                out[j] = self.number(raw)

    def _layout(self, group: _Group, view: int, names: bytes) -> tuple[np.ndarray, np.ndarray | None, int]:
        """Where a view's packed values go (its features outside the service: left out), remembered."""
        layout = self._layouts.get((view, names))
        if layout is None:
            found = [group.columns[view].get(n.decode(), -1) for n in names.split(_NAME_SEP)]
            keep = np.flatnonzero(np.asarray(found) >= 0)
            cols = np.asarray(found)[keep]
            layout = (cols, None if len(keep) == len(found) else keep, len(found))
            if len(self._layouts) < LAYOUTS:
                self._layouts[(view, names)] = layout
        return layout


class _RedisRead(_DirectRead):
    """Feast's Redis online store: a hash per (entity key + project), a field per murmur3 of `view:feature`."""

    def __init__(self, store: FeastFeatureStore, **kw: Any) -> None:
        super().__init__(store, **kw)
        assert store.facts.redis is not None
        self._client = fr.redis_client(store.facts.redis)
        address = parse_connection_string(store.facts.redis)
        self._async = AsyncRedis(address) if address is not None else None
        self._fields = {id(group): Fields.of(group.redis_fields) for group in self.groups}

    @property
    def aread(self) -> Callable[[Sequence[Mapping[str, Any]]], Awaitable[OnlineRows]] | None:
        """The same read on the running event loop (`slipway.features.resp`), None for a connection string that
        client cannot follow (TLS and other options: the blocking read, on a thread)."""
        return self._read_async if self._async is not None else None

    async def _read_async(self, keys: Sequence[Mapping[str, Any]]) -> OnlineRows:
        """Non-blocking (awaits Redis); what `__call__` answers, every HMGET pipelined on the loop's connection."""
        assert self._async is not None
        rows, values = self.blank(keys)
        todo = self._todo(rows)
        if todo:
            answers = await self._async.hmget_many([(key, self._fields[id(group)]) for group, _, key in todo])
            for (group, i, _), raws in zip(todo, answers, strict=True):
                self.put(values[i], group.redis_columns, raws)
        return self.answer(values, rows)

    def close(self) -> None:
        """Idempotent; closes the event-loop connection (call it on the loop's thread)."""
        if self._async is not None:
            self._async.close()

    def _todo(self, rows: list[dict[str, Any]]) -> list[tuple[_Group, int, bytes]]:
        return [
            (group, i, key)
            for group in self.groups
            for i, row in enumerate(rows)
            if (key := self.stored_key(group, row)) is not None
        ]

    def fill(self, values: np.ndarray, rows: list[dict[str, Any]]) -> None:
        todo = self._todo(rows)
        if not todo:
            return
        if len(todo) == 1:  # one entity, one group: no pipeline
            group, i, key = todo[0]
            answers = [self._client.hmget(key, group.redis_fields)]
        else:
            with self._client.pipeline(transaction=False) as pipe:
                for group, _, key in todo:
                    pipe.hmget(key, group.redis_fields)
                answers = pipe.execute()
        for (group, i, _), raws in zip(todo, answers, strict=True):
            self.put(values[i], group.redis_columns, raws)
