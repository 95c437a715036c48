"""Serving by entity key: the bundle's feature service opened at start, its definition checked, rows looked up.

A bundle with a `feature_service` (see `slipway.serving.bundle.FeatureServiceMeta`) makes the server open that
service of its Feast repository while the model warms up (importing Feast takes ~4 s, so it runs on a thread).
The server is not Ready while the store cannot be opened or its service's definition hash differs from the
one the model was trained on; `service_problem` says why, naming the service and both hashes. Lookups read
the online store directly where they can (`slipway.features.direct`: the rows Feast stores, ~10x cheaper than
Feast's request path), else through `FeatureStore.online`. A read that is fast and computes (SQLite's page
cache) runs on the event loop; one that waits on a socket (Redis), or is slow, runs on one lookup thread, which
gathers the lookups queued while its previous read ran into one read (neither path is documented thread-safe:
one thread at a time). Nothing here imports Feast or pandas at import time.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from slipway.serving.bundle import FeatureServiceMeta

if TYPE_CHECKING:
    from slipway.features.base import FeatureStore, OnlineRows

ONLINE_STORE_ENV: Final = "SLIPWAY_FEATURES_ONLINE_STORE"  # = slipway.features.factory.ONLINE_STORE_ENV
FEAST_METRICS_PREFIX: Final = "feast_metrics_"  # feast.metrics' tempfile.mkdtemp prefix
PROMETHEUS_DIR_ENVS: Final = ("PROMETHEUS_MULTIPROC_DIR", "PROMETHEUS_MULTIPROCESS_DIR")
TIMED_LOOKUPS: Final = 20
INLINE_MIN_CPU_SHARE: Final = 0.8  # less: the read waits on I/O (loopback Redis: ~0.55, SQLite: ~0.99)
GATHER_MAX_KEYS: Final = 256  # most keys one gathered read takes (a larger request is read alone)
StoreFactory = Callable[[FeatureServiceMeta], "FeatureStore"]
OnlineRead = Callable[[Sequence[Mapping[str, Any]]], "OnlineRows"]
AsyncRead = Callable[[Sequence[Mapping[str, Any]]], Awaitable["OnlineRows"]]


def drop_inherited_feast_metrics_dir() -> str | None:
    """Non-blocking; removes from os.environ a Prometheus multiprocess folder that Feast made for ANOTHER process
    (importing `feast.metrics` sets PROMETHEUS_MULTIPROC_DIR to its own temp folder, and every process started
    afterwards, e.g. a release's servers, inherits it); the folder dropped, or None. Call it before
    prometheus_client is imported: otherwise the server would keep its values in that folder (summed with every
    other server that inherited it, and deleted when its creator exits)."""
    dirs = {os.environ.get(name) for name in PROMETHEUS_DIR_ENVS} - {None, ""}
    feast = next((d for d in dirs if d and Path(d).name.startswith(FEAST_METRICS_PREFIX)), None)
    if feast is not None:
        for name in PROMETHEUS_DIR_ENVS:
            os.environ.pop(name, None)
    return feast


def open_feast_store(meta: FeatureServiceMeta) -> FeatureStore:
    """Non-blocking (Feast is imported on first use of the store); the bundle's service of its Feast repository,
    online store from $SLIPWAY_FEATURES_ONLINE_STORE, else the bundle's override, else the repository's own.
    FeatureStoreError for an unusable online-store URL."""
    from slipway.features.feast_repo import online_store_override
    from slipway.features.feast_store import FeastFeatureStore
    from slipway.settings import Settings

    url = os.environ.get(ONLINE_STORE_ENV) or meta.online_store
    override = online_store_override(url, base_dir=Path.cwd()) if url else None
    return FeastFeatureStore(
        repo=Path(meta.repo),
        service=meta.name,
        state_dir=Settings().home / "features",  # never written: the server only reads
        online_store=override,
    )


def service_problem(store: FeatureStore, meta: FeatureServiceMeta) -> str | None:
    """Blocking (reads the registry); why `store` cannot serve the bundle's model, None when it can: another
    definition hash (both named), other features or other entity keys."""
    current = store.service_hash()
    if current != meta.service_hash:
        return (
            f"feature service {meta.name!r} changed since the model was trained: the store's definition hash "
            f"is {current}, the bundle's {meta.service_hash} (retrain on it, or apply the definition it was "
            "trained on)"
        )
    features, keys = list(store.features()), list(store.entity_keys())
    if features != meta.features:
        return f"feature service {meta.name!r} serves {features}, the model reads {meta.features}"
    if keys != meta.entity_keys:
        return f"feature service {meta.name!r} joins on {keys}, the bundle says {meta.entity_keys}"
    return None


class EntityLookup:
    """The opened store of one bundle's feature service, how its rows are read (`how`), and where: inline on the
    event loop, or on one lookup thread that reads every lookup queued while its previous read ran in ONE read
    (a Redis pipeline, SQLite queries back to back), so the loop serves other requests while the store answers."""

    def __init__(
        self,
        store: FeatureStore,
        meta: FeatureServiceMeta,
        *,
        read: OnlineRead | None = None,
        inline: bool,
        how: str = "FeatureStore.online",
    ) -> None:
        self.store = store
        self.meta = meta
        self.read: OnlineRead = read or store.online
        self.inline = inline
        self.how = how
        self.aread: AsyncRead | None = getattr(self.read, "aread", None)  # reads on the loop, no thread
        self.reads = 0  # reads done on the lookup thread (fewer than lookups when they were gathered)
        self._executor: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[Sequence[Mapping[str, Any]], asyncio.Future[OnlineRows]]] = deque()
        self._drainer: asyncio.Task[None] | None = None

    async def online(self, keys: Sequence[Mapping[str, Any]]) -> OnlineRows:
        """One online-store read of `keys` (inline, or gathered on the lookup thread); FeatureStoreError and the
        store's own errors (a Redis connection refused) pass through."""
        if self.aread is not None:
            return await self.aread(keys)
        if self.inline:
            return self.read(keys)
        future: asyncio.Future[OnlineRows] = asyncio.get_running_loop().create_future()
        self._pending.append((keys, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Reads what is queued, in batches of up to GATHER_MAX_KEYS keys (a larger request alone), until empty."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slipway-features")
        loop = asyncio.get_running_loop()
        while self._pending:
            items = [self._pending.popleft()]
            size = len(items[0][0])
            while self._pending and size + len(self._pending[0][0]) <= GATHER_MAX_KEYS:
                items.append(self._pending.popleft())
                size += len(items[-1][0])
            items = [(keys, f) for keys, f in items if not f.cancelled()]
            if not items:
                continue
            keys = items[0][0] if len(items) == 1 else [k for ks, _ in items for k in ks]
            try:
                rows = await loop.run_in_executor(self._executor, self.read, keys)
            except Exception as exc:  # every lookup of the read gets the store's error
                for _, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.reads += 1
            start = 0
            for part, future in items:
                if not future.done():
                    future.set_result(rows if len(items) == 1 else slice_rows(rows, start, len(part)))
                start += len(part)

    def calibrate(self, *, inline_max_ms: float) -> None:
        """Blocking (TIMED_LOOKUPS + 2 reads; call it with nothing else running, after the model's warm-up:
        a contended GIL would look like waiting); decides `inline` (`runs_inline`) and says why in `how`."""
        if self.aread is not None:  # the loop waits on the socket like on any client's: nothing to decide
            return
        best_ms, cpu_share = lookup_ms(self.read, self.meta)
        self.inline = runs_inline(best_ms, cpu_share, inline_max_ms=inline_max_ms)
        self.how += f"; fastest read {best_ms:.3f} ms, {cpu_share:.0%} on the CPU"

    async def aclose(self) -> None:
        """Idempotent; closes the event-loop connection (on the loop), then the lookup thread (off it)."""
        closer = getattr(self.read, "close", None)
        if self.aread is not None and closer is not None:
            closer()
        await asyncio.to_thread(self.close)

    def where(self) -> str:
        """Pure; where lookups run, for the log."""
        if self.aread is not None:
            return "on the event loop, pipelined"
        return "inline" if self.inline else "on the lookup thread, gathered"

    def close(self) -> None:
        """Idempotent; stops the lookup thread (after the read running on it)."""
        if self._drainer is not None:
            self._drainer.cancel()
            self._drainer = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


def slice_rows(rows: OnlineRows, start: int, n: int) -> OnlineRows:
    """Pure; rows start..start+n of a gathered read, as a read of those keys alone would answer."""
    stop = start + n
    missing = tuple(replace(m, index=m.index - start) for m in rows.missing if start <= m.index < stop)
    return replace(rows, values=rows.values[start:stop], found=rows.found[start:stop], missing=missing)


def probe_key(meta: FeatureServiceMeta) -> dict[str, Any]:
    """Pure; an entity key for timing lookups (every join key 0: found or not, the read costs the same)."""
    return dict.fromkeys(meta.entity_keys, 0)


def lookup_ms(read: OnlineRead, meta: FeatureServiceMeta) -> tuple[float, float]:
    """Blocking (TIMED_LOOKUPS + 2 reads); the fastest one-entity read's time in ms (the store's own cost, as
    `slipway.serving.service.inline_rows` times the model) and the share of all reads' time spent on the CPU
    (low: the read waits on a socket); (inf, 0) when the probe key is refused."""
    key = [probe_key(meta)]
    try:
        for _ in range(2):  # the first reads open connections and plan the request
            read(key)
        best = float("inf")
        wall0, cpu0 = time.perf_counter(), time.thread_time()
        for _ in range(TIMED_LOOKUPS):
            start = time.perf_counter()
            read(key)
            best = min(best, (time.perf_counter() - start) * 1000)
        wall, cpu = time.perf_counter() - wall0, time.thread_time() - cpu0
    except Exception:  # e.g. a string join key that refuses 0: time nothing, look up on the thread
        return float("inf"), 0.0
    return best, min(1.0, cpu / wall) if wall > 0 else 1.0


def runs_inline(best_ms: float, cpu_share: float, *, inline_max_ms: float) -> bool:
    """Pure; whether lookups run on the event loop: a read faster than `inline_max_ms` that computes rather than
    waits (CPU share >= INLINE_MIN_CPU_SHARE: SQLite's page cache). A read that waits on a socket (Redis) goes
    to the lookup thread, where concurrent lookups are gathered and the loop serves meanwhile."""
    return inline_max_ms > 0 and best_ms < inline_max_ms and cpu_share >= INLINE_MIN_CPU_SHARE


def open_lookup(meta: FeatureServiceMeta, *, factory: StoreFactory) -> tuple[EntityLookup | None, str | None]:
    """Blocking (imports Feast the first time, ~4 s; reads the registry); the lookup of the bundle's service (on
    its thread until `calibrate`d) and None, or None and why the server must not be Ready (the store cannot be
    opened, or serves another definition)."""
    try:
        store = factory(meta)
        problem = service_problem(store, meta)
    except ModuleNotFoundError as exc:
        return None, (
            f"feature service {meta.name!r}: {exc.name or 'feast'} is not installed here (the serving image has no "
            "Feast: serve feature-store models as local processes)"
        )
    except Exception as exc:
        return None, f"feature service {meta.name!r} cannot be opened: {type(exc).__name__}: {exc}"
    if problem is not None:
        return None, problem
    from slipway.features.direct import direct_online

    direct, how = direct_online(store)
    read = direct or store.online
    if direct is None:
        how = f"FeatureStore.online ({how})"
    return EntityLookup(store, meta, read=read, inline=False, how=how), None
