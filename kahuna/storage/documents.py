"""One collection of Kahuna documents, with the conventions every object shares.

Every document has ``_id`` (an ObjectId that cannot be guessed, see :class:`ObjectIds`,
whose hex form is the API ``id``), ``created_at``, ``updated_at`` and ``schema_version``. References to other
objects are stored as hex strings, as the API shows them. Each write touches one
document atomically (FerretDB v1 has no multi-document transactions), and
uniqueness is enforced by unique indexes, never by a read before the write.
"""

from __future__ import annotations

import datetime
import secrets
import struct
import threading
import time
import typing

import pymongo
from bson import ObjectId
from bson.errors import InvalidId
from bson.raw_bson import RawBSONDocument
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError, OperationFailure

from kahuna.errors import Conflict, NotFound, Unprocessable
from kahuna.storage.cache import AnyCollection, CachedCollection

#: A document as pymongo hands it out, and a query or update as Kahuna writes one. The typed shapes of stored
#: documents are in :mod:`kahuna.storage.models`; ``Documents[models.User]`` hands out those.
Document = dict[str, typing.Any]
Query = typing.Mapping[str, typing.Any]
DocumentT = typing.TypeVar("DocumentT", bound=typing.Mapping[str, typing.Any])


def utcnow() -> datetime.datetime:
    # BSON keeps milliseconds; truncating here makes a value read back equal to the one written.
    now = datetime.datetime.now(datetime.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class ObjectIds:
    """New ``_id`` values: valid ObjectIds, in creation order, that cannot be guessed from their neighbours.

    A driver ObjectId is a timestamp, a per-process value and a counter: the id of an object made
    between two of yours is one of one or two candidates. Here the first 4 bytes are still the
    creation second (index locality, the driver's ``generation_time``), and the 8 others a value
    that starts at a random point below 2**56 each second and climbs by a random step of 1 to
    2**48, all drawn from :mod:`secrets`. A client that saw the ids made just before and just after
    an object still has about 2**48 candidates for it (2**56 for the first of a second), while
    sorting by ``_id`` still gives the creation order, which Kahuna relies on ("the first subnet",
    disk order, lists). Ids only go up: a second that fills up (some 100,000 ids), or a clock that
    goes back, borrows the next second.
    """

    START_BITS = 56
    STEP_BITS = 48

    def __init__(self, clock: typing.Callable[[], float] = time.time):
        self._clock = clock
        self._lock = threading.Lock()
        self._second = 0
        self._low = 0

    def new(self) -> ObjectId:
        with self._lock:  # no greenlet switch inside: plain arithmetic
            second = int(self._clock())
            step = 1 + secrets.randbits(self.STEP_BITS)
            if second <= self._second and self._low + step < 1 << 64:
                second, low = self._second, self._low + step
            else:
                second, low = max(second, self._second + 1), secrets.randbits(self.START_BITS)
            self._second, self._low = second, low
        return ObjectId(struct.pack(">IQ", second & 0xFFFFFFFF, low))


#: The one source of new ids of the process (sessions, API key digests and nonces bring their own ``_id``).
new_object_id = ObjectIds().new


def is_duplicate_key(error: OperationFailure) -> bool:
    """A unique index refused the write.

    MongoDB says so with code 11000; FerretDB v1 does for inserts, but reports a
    violation by an update as an internal error carrying SQLite's message.
    """
    return isinstance(error, DuplicateKeyError) or "UNIQUE constraint failed" in str(error)


def is_transient(error: Exception) -> bool:
    """A write refused for now but worth retrying: FerretDB's SQLite backend answers SQLITE_BUSY
    (as an internal error) when too many writers contend, where MongoDB would have queued them."""
    return isinstance(error, OperationFailure) and "SQLITE_BUSY" in str(error)


def object_id(text: typing.Any, kind: str) -> ObjectId:
    """The ObjectId behind an API id; a malformed id names no object, hence 404."""
    if isinstance(text, ObjectId):
        return text
    try:
        return ObjectId(text)
    except (InvalidId, TypeError):
        raise NotFound(f"{kind} {text!r} does not exist") from None


class Documents(typing.Generic[DocumentT]):
    """The documents of one kind, e.g. ``Documents[models.User](db["user"], "user", 3)``.

    The type parameter is what reads hand out; the collection holds plain BSON documents, so
    :meth:`insert` and :meth:`update` take mappings and the type is a promise kept by the services
    that write each kind (and by ``kahuna migrate`` for converted documents).
    """

    def __init__(self, collection: AnyCollection, kind: str, schema_version: int):
        self.collection = collection
        self.kind = kind
        self.schema_version = schema_version

    # -- reads -------------------------------------------------------------

    def get(self, doc_id: object) -> DocumentT:
        found = self.collection.find_one({"_id": object_id(doc_id, self.kind)})
        if found is None:
            raise NotFound(f"{self.kind} {doc_id} does not exist")
        return typing.cast(DocumentT, found)

    def find_one(self, query: Query) -> DocumentT | None:
        return typing.cast(DocumentT | None, self.collection.find_one(query))

    def find(self, query: Query | None = None, **kwargs: typing.Any) -> list[DocumentT]:
        return typing.cast(list[DocumentT], list(self.collection.find(query or {}, **kwargs)))

    def find_by_ids(self, ids: typing.Iterable[ObjectId], projection: typing.Mapping[str, int]) -> dict[ObjectId,
                    Document]:
        """The (projected) documents of *ids* that exist, served by the document cache (see
        :meth:`kahuna.storage.cache.CachedCollection.find_by_ids`)."""
        return self._cached().find_by_ids(ids, projection)

    def preload(self, query: Query, *, keep: typing.Callable[[RawBSONDocument], bool] | None = None,
                limit: int = 0) -> list[RawBSONDocument]:
        """Read the documents matching *query* at once into the document cache (see
        :meth:`kahuna.storage.cache.CachedCollection.preload`)."""
        return self._cached().preload(query, keep=keep, limit=limit)

    def _cached(self) -> CachedCollection:
        if not isinstance(self.collection, CachedCollection):
            raise TypeError(f"the {self.kind} collection is not served by the document cache")
        return self.collection

    def ids(self, query: Query | None = None) -> list[str]:
        cursor = self.collection.find(query or {}, {"_id": 1}).sort("_id", pymongo.ASCENDING)
        return [str(doc["_id"]) for doc in cursor]

    def existing_ids(self, ids: typing.Iterable[str]) -> list[str]:
        """*ids* de-duplicated in order, or :class:`Unprocessable` naming those that do not exist."""
        wanted = list(dict.fromkeys(ids))
        candidates = [ObjectId(i) for i in wanted if ObjectId.is_valid(i)]
        found = {str(doc["_id"]) for doc in self.collection.find({"_id": {"$in": candidates}}, {"_id": 1})}
        missing = [i for i in wanted if i not in found]
        if missing:
            raise Unprocessable(f"unknown {self.kind}(s): {', '.join(missing)}")
        return wanted

    def count(self, query: Query | None = None) -> int:
        return self.collection.count_documents(query or {})

    def exists(self, query: Query) -> bool:
        return self.collection.find_one(query, {"_id": 1}) is not None

    # -- writes ------------------------------------------------------------

    def insert(self, fields: Query, conflict: str | None = None) -> DocumentT:
        now = utcnow()
        doc: Document = {"_id": new_object_id(), **fields, "created_at": now, "updated_at": now,
               "schema_version": self.schema_version}
        try:
            self.collection.insert_one(doc)
        except OperationFailure as exc:
            if not is_duplicate_key(exc):
                raise
            raise Conflict(conflict or f"a {self.kind} with the same name already exists") from None
        return typing.cast(DocumentT, doc)

    def update(
        self,
        doc_id: object,
        set_fields: Query | None = None,
        *,
        extra: Query | None = None,
        where: Query | None = None,
        conflict: str | None = None,
    ) -> DocumentT:
        """Apply ``$set`` (plus other operators in *extra*) to one document, return it as stored.

        *where* adds conditions; when they do not hold the object is reported as
        missing, so callers use it only for conditions on the object's own state.
        """
        update: Document = {"$set": {**(set_fields or {}), "updated_at": utcnow()}}
        for operator, value in (extra or {}).items():
            update.setdefault(operator, {}).update(value)
        query = {"_id": object_id(doc_id, self.kind), **(where or {})}
        try:
            updated = self.collection.find_one_and_update(query, update, return_document=ReturnDocument.AFTER)
        except OperationFailure as exc:
            if not is_duplicate_key(exc):
                raise
            raise Conflict(conflict or f"a {self.kind} with the same name already exists") from None
        if updated is None:
            raise NotFound(f"{self.kind} {doc_id} does not exist")
        return typing.cast(DocumentT, updated)

    def delete(self, doc_id: object) -> None:
        result = self.collection.delete_one({"_id": object_id(doc_id, self.kind)})
        if result.deleted_count == 0:
            raise NotFound(f"{self.kind} {doc_id} does not exist")

    def delete_many(self, query: Query) -> int:
        return self.collection.delete_many(query).deleted_count
