"""Documents kept in memory on the active node, so that reads by ``_id`` need no database round trip.

Only ``find_one({"_id": <one id>})`` (optionally with a plain inclusion projection) is served
from memory: :meth:`Documents.get`, the authentication lookups (API key digest -> token ->
user, JWT session -> user; agent -> API key digest -> token at an agent's handshake), the owner
checks of RBAC. :meth:`CachedCollection.find_by_ids` serves several ids at once, asking the
database in one query for those not in memory. Everything else goes to the database.

Correctness rules:

- **Writes go through, then invalidate.** Every pymongo :class:`Collection` Kahuna uses is
  wrapped in a :class:`CachedCollection` whose write methods (insert/update/replace/delete,
  ``find_one_and_*``, ``bulk_write``, ``drop``, ``rename``…) drop the documents they may have
  touched once the database answered, or raised: the one ``_id`` (or ``$in`` list) the
  filter names, otherwise every document of the collection. Services that write through
  ``documents.collection`` or ``db.db[name]`` are covered alike.
- **No late fill.** A read that missed snapshots the collection's generation before asking
  the database, and fills the cache only if no write to that collection (and no clear)
  happened meanwhile: a greenlet that read the old value while another wrote cannot put it
  back after the write's invalidation.
- **Active node only.** The cache answers only while ``is_active()`` holds (HA off: always);
  a passive node reads the database. :meth:`DocumentCache.clear` is called when the node
  takes the lease, before it publishes itself active, so nothing written by the other node
  meanwhile is served stale.
- **Bounded.** At most ``max_entries`` documents and ``max_bytes`` of BSON, least recently
  used first out; each entry lives at most ``max_age`` seconds, which bounds how long a write
  made outside this process (the passive node's e-mailed-link pages, a request the former
  active node finished after a failover, an operator's manual edit) can go unseen.

Preloading (reconnect storms). After a restart or a failover every agent reconnects within
seconds, right after the cache was cleared: each handshake would read its agent, its key's
digest and its token from the database (three round trips, and on FerretDB's SQLite backend
most of its CPU). :meth:`CachedCollection.preload` reads many documents in one query and keeps
them; the daemon has the agents' credentials preloaded at the start of every active term
(:meth:`kahuna.services.agents.AgentService.preload_credentials`), so that the storm's
handshakes are answered from memory. Preloaded documents follow the same rules, with two
differences that are deliberate:

- **No late fill, per document.** A multi-document read (a preload, or the query of
  :meth:`CachedCollection.find_by_ids`) takes a while, during which the storm's own writes
  (an agent's new capabilities) come in: voiding the whole read at the first write, as a
  single read is, would void it nearly always. So a bulk read records the ids written in its
  collection while it is in flight and does not keep those; a collection-wide write or a
  clear voids it whole.
- **They live PRELOAD_MAX_AGE (60 s), not max_age.** A storm lasts up to some 30 s after the
  preload; documents that expired after 5 s would all be read again one by one, which is what
  the preload is there to avoid. The price: during the first minute of an active term, a write
  to a preloaded document made *outside this process* (an operator's manual edit, or a key
  rotated by a request the former active node finished after the failover) goes unseen for up
  to 60 s instead of 5 s: the old key is still accepted, and the new one refused (its token,
  as preloaded, holds the old digest), until then. Every write made through this process
  (revoking, rotating or deleting a key, deleting an agent) still drops the documents at once,
  so such a key is refused at the next handshake. A document read again after a write lives
  max_age as usual.

Preloads, and the documents they fill, are bounded too: a preload stops once the cache holds
PRELOAD_SHARE of its entries or bytes, so the rest of the working set keeps room. Preloaded
documents may be filled before the node is published active (the daemon preloads right after
taking the lease, in the background): that is harmless, since entries are served only while the node is active and every
active term starts with a clear.

Documents are kept as BSON bytes and decoded at each hit: every caller gets its own copy, of
the very types the database returns, and may change it freely.

Greenlets (and pykka actors, which are greenlets once gevent has patched threading) share
one instance. Its critical sections never yield nor block, so they hold an OS lock (gevent's
patched lock is pure Python, and several times slower): enough under real threads too.
"""

from __future__ import annotations

import collections
import contextlib
import time
import typing

import bson
from bson import ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from gevent.monkey import get_original
from pymongo.collection import Collection
from pymongo.database import Database as MongoDatabase

Document = dict[str, typing.Any]

_os_lock = get_original("_thread", "allocate_lock")

#: Seconds an entry may be served before it is read again (see the module's docstring).
MAX_AGE = 5.0
#: Seconds a preloaded entry may be served: the length of a reconnect storm, with room (see the docstring).
PRELOAD_MAX_AGE = 60.0
#: Room for 10,000 agents' preloaded credentials (agent, API key digest, token: 30,000 entries) within
#: PRELOAD_SHARE, and for the working set beside them.
MAX_ENTRIES = 100_000
MAX_BYTES = 64 * 1024 * 1024
#: The share of max_entries and max_bytes that a preload may fill the cache up to.
PRELOAD_SHARE = 0.5
#: Documents a bulk read fetches (one getMore each) and stores at a time: other greenlets run in between.
_BULK_SLICE = 500

#: A document's BSON as :attr:`RawBSONDocument.raw` gives it: since pymongo 4.18 a large document is a
#: :class:`memoryview` of the whole reply, which the cache copies (:meth:`DocumentCache._store`) rather than keep.
RawBytes: typing.TypeAlias = bytes | memoryview

#: Key types a cached ``_id`` may have (``bool`` excluded: ``True == 1`` in Python, not in BSON).
_ID_TYPES = (ObjectId, str, int)


def _cacheable_id(value: typing.Any) -> bool:
    return type(value) is not bool and isinstance(value, _ID_TYPES)


def _single_id(query: typing.Any) -> typing.Any:
    """The ``_id`` of ``{"_id": <scalar>}``, else None."""
    if type(query) is dict and len(query) == 1:
        value = query.get("_id")
        if value is not None and _cacheable_id(value):
            return value
    return None


def _written_ids(query: typing.Any) -> list[typing.Any] | None:
    """The ``_id``s a write filter can touch; None when it may touch any document."""
    if not isinstance(query, typing.Mapping) or "_id" not in query:
        return None
    value = query["_id"]
    if isinstance(value, _ID_TYPES) and type(value) is not bool:
        return [value]
    if isinstance(value, typing.Mapping) and len(value) == 1:
        (operator, operand), = value.items()
        if operator == "$eq" and isinstance(operand, _ID_TYPES) and type(operand) is not bool:
            return [operand]
        if operator == "$in" and isinstance(operand, (list, tuple)) and all(
                isinstance(v, _ID_TYPES) and type(v) is not bool for v in operand):
            return list(operand)
    return None


#: The shape of a read without projection: the whole document.
_WHOLE = (True, ("*",))


def _inclusion(projection: typing.Any) -> tuple[bool, tuple[str, ...]] | None:
    """``(keep _id, fields)`` of a plain top-level inclusion projection (:data:`_WHOLE` for none); None for
    anything else."""
    if projection is None:
        return _WHOLE
    if isinstance(projection, (list, tuple)):
        projection = dict.fromkeys(projection, 1)
    if not isinstance(projection, typing.Mapping) or not projection:
        return None
    keep_id, fields = True, []
    for name, value in projection.items():
        if type(name) is not str or "." in name or name.startswith("$") or type(value) not in (int, bool):
            return None
        if name == "_id":
            keep_id = bool(value)
        elif value:
            fields.append(name)
        else:
            return None  # an exclusion projection
    if not keep_id and not fields:
        return None  # {"_id": 0} alone excludes
    return keep_id, tuple(fields)


def _project(document: Document, shape: tuple[bool, tuple[str, ...]]) -> Document:
    keep_id, fields = shape
    projected = {"_id": document["_id"]} if keep_id and "_id" in document else {}
    for name in fields:
        if name in document:
            projected[name] = document[name]
    return projected


class BulkRead:
    """A multi-document read of one collection in flight, and the ids written there meanwhile.

    Made by :meth:`DocumentCache.bulk_read`; :meth:`DocumentCache.fill_bulk` keeps none of those
    ids, and nothing at all once the whole collection was written or the cache cleared.
    """

    __slots__ = ("collection", "clears", "written", "void")

    def __init__(self, collection: str, clears: int):
        self.collection = collection
        self.clears = clears
        self.written: set[typing.Any] = set()
        self.void = False


class CacheStats(typing.NamedTuple):
    hits: int
    misses: int
    entries: int
    bytes: int


class DocumentCache:
    """Documents by (collection, ``_id``), filled by :class:`CachedCollection` reads, emptied by its writes."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES, max_age: float = MAX_AGE,
                 clock: typing.Callable[[], float] = time.monotonic):
        self.max_entries, self.max_bytes, self.max_age = max_entries, max_bytes, max_age
        self.clock = clock
        # (collection, _id) -> (bson bytes, collection epoch at fill, expiry on clock)
        self._entries: collections.OrderedDict[tuple[str, typing.Any], tuple[bytes, int, float]] = \
            collections.OrderedDict()
        self._bytes = 0
        # Per collection: generation (bumped at every write) and epoch (bumped when all its documents go).
        self._generations: dict[str, int] = {}
        self._epochs: dict[str, int] = {}
        self._clears = 0
        # Per collection: the bulk reads in flight there (see BulkRead).
        self._bulk_reads: dict[str, set[BulkRead]] = {}
        self._lock = _os_lock()
        self._is_active: typing.Callable[[], bool] = lambda: False
        self.hits = 0
        self.misses = 0

    # -- life cycle ----------------------------------------------------------------

    def attach(self, is_active: typing.Callable[[], bool]) -> None:
        """Serve from memory whenever *is_active()* holds (until then, every read goes to the database)."""
        self.clear()
        self._is_active = is_active

    def enabled(self) -> bool:
        return self._is_active()

    def clear(self) -> None:
        """Forget everything, and make every read in flight unable to fill (a new active term starts)."""
        with self._lock:
            self._clears += 1
            self._entries.clear()
            self._bytes = 0

    def stats(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, len(self._entries), self._bytes)

    # -- reads ---------------------------------------------------------------------

    def lookup(self, collection: str, doc_id: typing.Any) -> bytes | None:
        key = (collection, doc_id)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                raw, epoch, expires = entry
                if epoch == self._epochs.get(collection, 0) and self.clock() < expires:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return raw
                self._drop(key)
            self.misses += 1
            return None

    def snapshot(self, collection: str) -> tuple[int, int]:
        """Taken before reading the database; :meth:`fill` refuses it if a write came in between."""
        return self._clears, self._generations.get(collection, 0)

    def fill(self, collection: str, doc_id: typing.Any, raw: RawBytes, snapshot: tuple[int, int]) -> bool:
        size = len(raw)
        if size > self.max_bytes // 16 or not self._is_active():
            return False
        with self._lock:
            if snapshot != (self._clears, self._generations.get(collection, 0)):
                return False
            self._store((collection, doc_id), raw, self.clock() + self.max_age)
            return True

    def _drop(self, key: tuple[str, typing.Any]) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= len(entry[0])

    def _store(self, key: tuple[str, typing.Any], raw: RawBytes, expires: float) -> None:
        """Under the lock: *raw* as the entry of *key*, then the least recently used out beyond the bounds.

        A :class:`memoryview` is copied: kept, it would hold its whole reply in memory, beyond ``max_bytes``."""
        self._drop(key)
        stored = bytes(raw)  # bytes as they are (no copy)
        self._entries[key] = (stored, self._epochs.get(key[0], 0), expires)
        self._bytes += len(stored)
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, (old, _, _) = self._entries.popitem(last=False)
            self._bytes -= len(old)

    # -- reads of many documents ---------------------------------------------------

    @contextlib.contextmanager
    def bulk_read(self, collection: str) -> typing.Iterator[BulkRead]:
        """Open before a multi-document read of *collection* is sent, for :meth:`fill_bulk`; closed after."""
        with self._lock:
            read = BulkRead(collection, self._clears)
            self._bulk_reads.setdefault(collection, set()).add(read)
        try:
            yield read
        finally:
            with self._lock:
                reads = self._bulk_reads[collection]
                reads.discard(read)
                if not reads:
                    del self._bulk_reads[collection]

    def fill_bulk(self, read: BulkRead, documents: typing.Iterable[tuple[typing.Any, RawBytes]],
                  max_age: float | None = None, share: float = 1.0) -> int:
        """Keep *documents* (``(_id, bson)`` pairs that *read* returned) for *max_age* seconds (default
        ``max_age``), but none written since *read* was opened, and only while the cache holds less than
        *share* of its bounds (1: least recently used out as usual). Returns how many were kept."""
        lifetime = self.max_age if max_age is None else max_age
        capped = share < 1.0
        entries_cap, bytes_cap = int(self.max_entries * share), int(self.max_bytes * share)
        single_cap = self.max_bytes // 16
        kept = 0
        with self._lock:
            if read.void or read.clears != self._clears:
                return 0
            expires = self.clock() + lifetime
            for doc_id, raw in documents:
                if capped and (len(self._entries) >= entries_cap or self._bytes + len(raw) > bytes_cap):
                    break
                if len(raw) > single_cap or doc_id in read.written or not _cacheable_id(doc_id):
                    continue
                self._store((read.collection, doc_id), raw, expires)
                kept += 1
        return kept

    # -- writes --------------------------------------------------------------------

    def invalidate(self, collection: str, ids: typing.Iterable[typing.Any] | None = None) -> None:
        """Drop *ids* of *collection* (all its documents when None); reads in flight there will not fill."""
        with self._lock:
            self._generations[collection] = self._generations.get(collection, 0) + 1
            reads = self._bulk_reads.get(collection, ())
            if ids is None:
                # Entries of an older epoch are dropped lazily, when next looked up or evicted.
                self._epochs[collection] = self._epochs.get(collection, 0) + 1
                for read in reads:
                    read.void = True
            else:
                ids = list(ids)
                for doc_id in ids:
                    self._drop((collection, doc_id))
                for read in reads:
                    read.written.update(ids)


def _filtered(method: str) -> typing.Callable[typing.Concatenate[CachedCollection, typing.Any, ...], typing.Any]:
    """The :class:`CachedCollection` method *method*: the collection's, then the documents its filter names dropped."""
    def write(self: CachedCollection, filter: typing.Any, *args: typing.Any,  # noqa: A002
              **kwargs: typing.Any) -> typing.Any:
        return self._invalidating(_written_ids(filter), method, filter, *args, **kwargs)

    write.__name__ = method
    return write


class CachedCollection:
    """A pymongo :class:`Collection` whose reads by ``_id`` use *cache* and whose writes invalidate it.

    Any attribute not defined here is the wrapped collection's (``find``, ``count_documents``,
    ``create_index``…): reads other than by one ``_id`` always go to the database.
    """

    def __init__(self, collection: Collection[Document], cache: DocumentCache):
        self._collection = collection
        self._cache = cache
        self._name = collection.name
        self._codec = collection.codec_options
        self._raw = collection.with_options(codec_options=CodecOptions(
            document_class=RawBSONDocument, tz_aware=self._codec.tz_aware, tzinfo=self._codec.tzinfo,
            uuid_representation=self._codec.uuid_representation))

    def __getattr__(self, name: str) -> typing.Any:
        return getattr(self._collection, name)

    def __repr__(self) -> str:
        return f"CachedCollection({self._collection!r})"

    @property
    def uncached(self) -> Collection[Document]:
        return self._collection

    # -- reads ---------------------------------------------------------------------

    def find_one(self, filter: typing.Any = None, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:  # noqa: A002
        doc_id = _single_id(filter)
        shape = None
        if doc_id is not None and len(args) <= 1 and (not kwargs or set(kwargs) == {"projection"}):
            shape = _inclusion(args[0] if args else kwargs.get("projection"))
        if shape is None or not self._cache.enabled():
            return self._collection.find_one(filter, *args, **kwargs)
        cache = self._cache
        raw: RawBytes | None = cache.lookup(self._name, doc_id)
        if raw is None:
            snapshot = cache.snapshot(self._name)
            found = self._raw.find_one({"_id": doc_id})
            if found is None:
                return None
            raw = found.raw
            cache.fill(self._name, doc_id, raw, snapshot)
        document = bson.decode(raw, self._codec)
        return document if shape is _WHOLE else _project(document, shape)

    def find_by_ids(self, ids: typing.Iterable[typing.Any],
                    projection: typing.Any = None) -> dict[typing.Any, Document]:
        """The documents of *ids* that exist, by ``_id``: those in memory from there, the others read one by one
        by ``_id`` (and kept, as :meth:`find_one` does). *projection* is a plain inclusion.

        One by one, not ``{"_id": {"$in": [...]}}``: FerretDB does not push ``$in`` down to SQLite, so each
        such query decodes the whole collection (over a second at 10,000 agents), while a read by ``_id``
        costs the same whatever the collection's size."""
        shape = _inclusion(projection)
        if shape is None:
            raise ValueError(f"find_by_ids takes a plain inclusion projection, not {projection!r}")
        cache = self._cache
        documents = {}
        for doc_id in dict.fromkeys(ids):
            raw = cache.lookup(self._name, doc_id) if cache.enabled() and _cacheable_id(doc_id) else None
            document = bson.decode(raw, self._codec) if raw is not None else self.find_one({"_id": doc_id})
            if document is not None:
                documents[doc_id] = document if shape is _WHOLE else _project(document, shape)
        return documents

    def preload(self, filter: typing.Any, *, keep: typing.Callable[[RawBSONDocument], bool] | None = None,  # noqa: A002
                limit: int = 0) -> list[RawBSONDocument]:
        """Read the documents matching *filter* in one query (at most *limit*, 0: all) and keep in the cache
        for PRELOAD_MAX_AGE those that *keep* accepts (all without it), as far as PRELOAD_SHARE of the cache's
        bounds allows; return the accepted ones, as :class:`RawBSONDocument` (their fields decode on access).

        The documents are kept even if the node is not active yet (see the module's docstring)."""
        cache = self._cache
        accepted: list[RawBSONDocument] = []
        with cache.bulk_read(self._name) as read:
            cursor = self._raw.find(filter, batch_size=_BULK_SLICE, limit=limit)
            batch: list[RawBSONDocument] = []
            for document in cursor:
                if keep is None or keep(document):
                    batch.append(document)
                if len(batch) == _BULK_SLICE:
                    cache.fill_bulk(read, [(doc["_id"], doc.raw) for doc in batch], PRELOAD_MAX_AGE, PRELOAD_SHARE)
                    accepted += batch
                    batch = []
            cache.fill_bulk(read, [(doc["_id"], doc.raw) for doc in batch], PRELOAD_MAX_AGE, PRELOAD_SHARE)
            accepted += batch
        return accepted

    # -- writes --------------------------------------------------------------------

    def _invalidating(self, ids: list[typing.Any] | None, method: str, *args: typing.Any,
                      **kwargs: typing.Any) -> typing.Any:
        try:
            return getattr(self._collection, method)(*args, **kwargs)
        finally:
            self._cache.invalidate(self._name, ids)

    def insert_one(self, document: typing.Any, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        try:
            return self._collection.insert_one(document, *args, **kwargs)
        finally:
            self._cache.invalidate(self._name, _written_ids(document) if isinstance(document, dict) else None)

    def insert_many(self, documents: typing.Any, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        return self._invalidating(None, "insert_many", documents, *args, **kwargs)

    update_one = _filtered("update_one")
    update_many = _filtered("update_many")
    replace_one = _filtered("replace_one")
    delete_one = _filtered("delete_one")
    delete_many = _filtered("delete_many")
    find_one_and_update = _filtered("find_one_and_update")
    find_one_and_replace = _filtered("find_one_and_replace")
    find_one_and_delete = _filtered("find_one_and_delete")

    def bulk_write(self, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        return self._invalidating(None, "bulk_write", *args, **kwargs)

    def drop(self, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        return self._invalidating(None, "drop", *args, **kwargs)

    def rename(self, new_name: str, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        try:
            return self._collection.rename(new_name, *args, **kwargs)
        finally:
            self._cache.invalidate(self._name)
            self._cache.invalidate(new_name)

    def aggregate(self, pipeline: typing.Any, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        writes = any(isinstance(stage, typing.Mapping) and ("$out" in stage or "$merge" in stage)
                     for stage in pipeline or ())
        try:
            return self._collection.aggregate(pipeline, *args, **kwargs)
        finally:
            if writes:
                self._cache.clear()

    def with_options(self, *args: typing.Any, **kwargs: typing.Any) -> CachedCollection:
        return CachedCollection(self._collection.with_options(*args, **kwargs), self._cache)


class CachedDatabase:
    """A pymongo :class:`~pymongo.database.Database` handing out :class:`CachedCollection`\\ s for *cached* names.

    Collections outside *cached* (the HA lease, settings, schema versions, agent nonces) are
    the plain pymongo ones: they are shared state between nodes, or written more than read.
    """

    def __init__(self, database: MongoDatabase[Document], cache: DocumentCache, cached: typing.Iterable[str]):
        self._database = database
        self._cache = cache
        self._cached = frozenset(cached)
        self._collections: dict[str, CachedCollection] = {}

    def __getattr__(self, name: str) -> typing.Any:
        value = getattr(self._database, name)
        return self._wrap(value) if isinstance(value, Collection) else value

    # __getitem__ and get_collection hand out what _wrap does, Collection[Document] | CachedCollection, typed Any
    # for now: kahuna.storage.Database gives those of every kind to Documents, which takes a Collection only.
    def __getitem__(self, name: str) -> typing.Any:
        return self._wrap(self._database[name])

    def __repr__(self) -> str:
        return f"CachedDatabase({self._database!r})"

    @property
    def uncached(self) -> MongoDatabase[Document]:
        return self._database

    def get_collection(self, name: str, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        return self._wrap(self._database.get_collection(name, *args, **kwargs), plain=not (args or kwargs))

    def drop_collection(self, name: typing.Any, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        try:
            return self._database.drop_collection(name, *args, **kwargs)
        finally:
            self._cache.invalidate(name if isinstance(name, str) else name.name)

    def _wrap(self, collection: Collection[Document], plain: bool = True) -> Collection[Document] | CachedCollection:
        if collection.name not in self._cached:
            return collection
        if not plain:
            return CachedCollection(collection, self._cache)
        wrapped = self._collections.get(collection.name)
        if wrapped is None:
            wrapped = self._collections[collection.name] = CachedCollection(collection, self._cache)
        return wrapped


#: A collection as Kahuna's storage code is handed one: pymongo's, or the :class:`CachedCollection` wrapping it.
AnyCollection: typing.TypeAlias = Collection[Document] | CachedCollection


class AnyDatabase(typing.Protocol):
    """What schema upkeep (:mod:`kahuna.storage.schema`, :mod:`kahuna.storage.go_import`) uses of a database:
    pymongo's :class:`~pymongo.database.Database`, or the :class:`CachedDatabase` that wraps it in
    :class:`kahuna.storage.Database` (whose other attributes, ``list_collection_names`` included, are pymongo's)."""

    def __getitem__(self, name: str, /) -> AnyCollection: ...

    def list_collection_names(self) -> list[str]: ...
