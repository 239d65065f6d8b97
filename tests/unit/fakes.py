"""Fakes of what the services reach through Protocols and factories, for the unit tier.

- :func:`memory_database`: a real :class:`kahuna.storage.Database` (its real :class:`~kahuna.storage.Documents`)
  over in-memory collections (:class:`MemoryCollection`). The collections implement the pymongo calls and the
  query and update operators the services use, with MongoDB's semantics, and the unique indexes declared in
  :mod:`kahuna.storage.schema`; any other operator, option or method raises :class:`NotImplementedError` naming
  it, so that a fake never answers a query it does not understand.
- :class:`FakeAgentPlane`: :class:`kahuna.rpc.AgentPlane`. Records each call an agent receives by the method's
  ``wire_name`` (``"Kiwi.CreateDnsRecord"``) and its params; answers what a test scripted, or raises it.
- :class:`FakeMailer`: :class:`kahuna.mail.Mailer`, keeping the letters; can be made to fail like a relay that is
  down.
- :class:`InlineOwners`: :class:`kahuna.services._common.Owners` that runs each function at once (and records
  under which keys).
- :class:`OpenLimiter`: :class:`kahuna.services.throttling.AttemptLimiter` that lets every attempt through, or
  none.
"""

from __future__ import annotations

import copy
import datetime
import re
import typing
from dataclasses import dataclass, field
from unittest import mock

import pymongo
from bson import ObjectId
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, OperationFailure
from pymongo.results import DeleteResult, InsertOneResult, UpdateResult

from kahuna import storage
from kahuna.errors import AgentUnavailable, Unprocessable
from kahuna.mail import Letter
from kahuna.storage import schema

Doc = dict[str, typing.Any]
_MISSING = object()


# -- the database -------------------------------------------------------------------------------------------


def _unsupported(what: str) -> NotImplementedError:
    return NotImplementedError(f"the in-memory database of tests/unit/fakes.py does not implement {what}")


def _lookup(doc: Doc, path: str) -> typing.Any:
    """The value at dotted *path*, or _MISSING."""
    value: typing.Any = doc
    for part in path.split("."):
        if isinstance(value, list):
            raise _unsupported(f"paths through arrays ({path!r})")
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _same(a: typing.Any, b: typing.Any) -> bool:
    """BSON equality: a boolean is not a number (Python's ``True == 1``), an ObjectId is not its hex string."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def _equals(value: typing.Any, target: typing.Any) -> bool:
    """``{field: target}``: null matches a missing field, and an array field matches if an element does."""
    if isinstance(target, re.Pattern):
        raise _unsupported("regular expressions in queries")
    if target is None:
        return value is _MISSING or value is None or (isinstance(value, list) and None in value)
    if value is _MISSING:
        return False
    if isinstance(value, list):
        return _same(value, target) or any(_same(item, target) for item in value)
    return _same(value, target)


def _comparable(a: typing.Any, b: typing.Any) -> bool:
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return not isinstance(a, bool) and not isinstance(b, bool)
    if isinstance(a, datetime.datetime) and isinstance(b, datetime.datetime):
        return True
    return type(a) is type(b)


def _condition(value: typing.Any, operator: str, operand: typing.Any) -> bool:
    if operator in ("$in", "$nin"):
        if not isinstance(operand, (list, tuple)):
            raise OperationFailure(f"{operator} needs an array", code=2)
        found = any(_equals(value, target) for target in operand)
        return found if operator == "$in" else not found
    if operator == "$ne":
        return not _equals(value, operand)
    if operator == "$exists":
        return (value is not _MISSING) == bool(operand)
    if operator == "$lt":
        values = value if isinstance(value, list) else [value]
        return any(v is not _MISSING and v is not None and _comparable(v, operand) and v < operand for v in values)
    raise _unsupported(f"the query operator {operator}")


def _field_matches(value: typing.Any, condition: typing.Any) -> bool:
    if isinstance(condition, dict) and any(key.startswith("$") for key in condition):
        if not all(key.startswith("$") for key in condition):
            raise _unsupported(f"a condition mixing operators and fields ({condition!r})")
        return all(_condition(value, operator, operand) for operator, operand in condition.items())
    return _equals(value, condition)


def matches(doc: Doc, query: typing.Mapping[str, typing.Any]) -> bool:
    """Whether *doc* matches the filter *query*."""
    for key, condition in query.items():
        if key == "$or":
            if not isinstance(condition, list) or not condition:
                raise OperationFailure("$or needs a nonempty array", code=2)
            if not any(matches(doc, branch) for branch in condition):
                return False
        elif key.startswith("$"):
            raise _unsupported(f"the query operator {key}")
        elif not _field_matches(_lookup(doc, key), condition):
            return False
    return True


def _set(doc: Doc, path: str, value: typing.Any) -> None:
    *parents, leaf = path.split(".")
    node = doc
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise OperationFailure(f"cannot create field {leaf!r} in element {{{part}: {child!r}}}", code=28)
        node = child
    node[leaf] = copy.deepcopy(value)


def _unset(doc: Doc, path: str) -> None:
    *parents, leaf = path.split(".")
    node: typing.Any = doc
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(leaf, None)


def _check_paths(paths: list[str]) -> None:
    for n, one in enumerate(paths):
        for other in paths[n + 1:]:
            if one == other or one.startswith(other + ".") or other.startswith(one + "."):
                raise OperationFailure(f"Updating the path '{one}' would create a conflict at '{other}'", code=40)


def _apply_update(doc: Doc, update: typing.Mapping[str, typing.Any], inserting: bool) -> None:
    if not update or not all(key.startswith("$") for key in update):
        raise _unsupported("replacement documents (an update without operators)")
    _check_paths([path for fields in update.values() for path in fields])
    for operator, fields in update.items():
        for path, value in fields.items():
            if operator == "$set" or (operator == "$setOnInsert" and inserting):
                _set(doc, path, value)
            elif operator == "$setOnInsert":
                pass
            elif operator == "$unset":
                _unset(doc, path)
            elif operator in ("$addToSet", "$pull"):
                if isinstance(value, dict) and any(key.startswith("$") for key in value):
                    raise _unsupported(f"modifiers and conditions in {operator} ({value!r})")
                current = _lookup(doc, path)
                if current is not _MISSING and not isinstance(current, list):
                    raise OperationFailure(f"{operator} on the non-array field {path!r}", code=2)
                items = [] if current is _MISSING else current
                if operator == "$pull":
                    if current is not _MISSING:
                        _set(doc, path, [item for item in items if not _same(item, value)])
                elif not any(_same(item, value) for item in items):
                    _set(doc, path, [*items, value])
            else:
                raise _unsupported(f"the update operator {operator}")


def _sort_key(value: typing.Any) -> tuple[int, typing.Any]:
    return (0, 0) if value is _MISSING or value is None else (1, value)


def _sort_spec(key_or_list: typing.Any, direction: int | None = None) -> list[tuple[str, int]]:
    if isinstance(key_or_list, str):
        spec = [(key_or_list, pymongo.ASCENDING if direction is None else direction)]
    else:
        spec = [(key, order) for key, order in key_or_list]
    for _, order in spec:
        if order not in (pymongo.ASCENDING, pymongo.DESCENDING):
            raise _unsupported(f"the sort order {order!r}")
    return spec


def _ordered(docs: list[Doc], spec: list[tuple[str, int]]) -> list[Doc]:
    docs = list(docs)
    for key, order in reversed(spec):  # stable sorts, the least significant key first
        docs.sort(key=lambda doc, key=key: _sort_key(_lookup(doc, key)), reverse=order == pymongo.DESCENDING)
    return docs


def _projector(projection: typing.Any) -> typing.Callable[[Doc], Doc]:
    if projection is None:
        return lambda doc: doc
    if isinstance(projection, (list, tuple)):
        projection = dict.fromkeys(projection, 1)
    keep_id, fields = True, []
    for name, flag in projection.items():
        if "." in name or name.startswith("$") or isinstance(flag, dict):
            raise _unsupported(f"the projection {projection!r}")
        if name == "_id":
            keep_id = bool(flag)
        elif flag:
            fields.append(name)
        else:
            raise _unsupported(f"exclusion projections ({projection!r})")
    if not fields and not keep_id:
        raise _unsupported(f"exclusion projections ({projection!r})")

    def project(doc: Doc) -> Doc:
        kept = {"_id": doc["_id"]} if keep_id and "_id" in doc else {}
        kept.update((name, doc[name]) for name in fields if name in doc)
        return kept

    return project


def _refuse_options(method: str, options: typing.Mapping[str, typing.Any]) -> None:
    if options:
        raise _unsupported(f"{method}() with {', '.join(sorted(options))}")


class MemoryCursor:
    """What :meth:`MemoryCollection.find` returns: iterable once sorted and limited (``.sort()``, ``.limit()``)."""

    def __init__(self, docs: list[Doc], projection: typing.Any):
        self._docs = docs
        self._project = _projector(projection)
        self._sort: list[tuple[str, int]] = []
        self._limit = 0

    def sort(self, key_or_list: typing.Any, direction: int | None = None) -> MemoryCursor:
        self._sort = _sort_spec(key_or_list, direction)
        return self

    def limit(self, count: int) -> MemoryCursor:
        self._limit = count
        return self

    def __iter__(self) -> typing.Iterator[Doc]:
        docs = _ordered(self._docs, self._sort)
        if self._limit:
            docs = docs[:abs(self._limit)]
        return iter([self._project(copy.deepcopy(doc)) for doc in docs])


class MemoryCollection:
    """One collection in memory, with the unique indexes *unique* ((name, keys) pairs) besides ``_id``'s.

    Documents are copied in and out, as a database would; the natural order is the insertion order.
    """

    def __init__(self, name: str, unique: typing.Iterable[tuple[str, tuple[str, ...]]] = ()):
        self.name = name
        self.unique = [("_id_", ("_id",)), *unique]
        self.docs: list[Doc] = []

    def __getattr__(self, name: str) -> typing.Any:
        if not name.startswith("_") and hasattr(Collection, name):
            raise _unsupported(f"Collection.{name}()")
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"MemoryCollection({self.name!r}, {len(self.docs)} documents)"

    # -- helpers ---------------------------------------------------------------------------------------

    def _matching(self, query: typing.Any) -> list[Doc]:
        if query is None:
            query = {}
        elif not isinstance(query, typing.Mapping):
            query = {"_id": query}  # pymongo's find_one(<id>)
        return [doc for doc in self.docs if matches(doc, query)]

    def _index_key(self, doc: Doc, keys: tuple[str, ...]) -> list[typing.Any]:
        """The values *doc* has in an index over *keys* (a missing field is indexed as null)."""
        values = []
        for key in keys:
            value = _lookup(doc, key)
            if isinstance(value, list):
                raise _unsupported(f"unique indexes over arrays ({self.name}.{key})")
            values.append(None if value is _MISSING else value)
        return values

    def _check_unique(self, candidate: Doc, replacing: Doc | None = None) -> None:
        for index, keys in self.unique:
            values = self._index_key(candidate, keys)
            for other in self.docs:
                if other is not replacing and all(
                        _same(mine, theirs) for mine, theirs in zip(values, self._index_key(other, keys), strict=True)):
                    raise DuplicateKeyError(f"E11000 duplicate key error collection: {self.name} index: {index} "
                                            f"dup key: {dict(zip(keys, values, strict=True))}", 11000)

    def _update(self, doc: Doc, update: typing.Mapping[str, typing.Any]) -> Doc:
        """*doc* (stored) changed by *update*: checked, then replaced in place; returns the new stored document."""
        changed = copy.deepcopy(doc)
        _apply_update(changed, update, inserting=False)
        if not _same(changed.get("_id"), doc.get("_id")):
            raise OperationFailure("Performing an update on the path '_id' would modify the immutable field '_id'",
                                   code=66)
        self._check_unique(changed, replacing=doc)
        self.docs[self.docs.index(doc)] = changed
        return changed

    def _upsert(self, query: typing.Mapping[str, typing.Any], update: typing.Mapping[str, typing.Any]) -> Doc:
        doc: Doc = {}
        for key, condition in query.items():
            if not key.startswith("$") and not (isinstance(condition, dict) and
                                                any(k.startswith("$") for k in condition)):
                _set(doc, key, condition)
        _apply_update(doc, update, inserting=True)
        doc.setdefault("_id", ObjectId())
        self._check_unique(doc)
        self.docs.append(doc)
        return doc

    # -- reads ---------------------------------------------------------------------------------------------

    def find(self, filter: typing.Any = None, projection: typing.Any = None, *,  # noqa: A002 - pymongo's name
             sort: typing.Any = None, limit: int = 0, **options: typing.Any) -> MemoryCursor:
        _refuse_options("find", options)
        cursor = MemoryCursor(self._matching(filter), projection)
        if sort is not None:
            cursor.sort(sort)
        return cursor.limit(limit)

    def find_one(self, filter: typing.Any = None, projection: typing.Any = None, *,  # noqa: A002
                 sort: typing.Any = None, **options: typing.Any) -> Doc | None:
        return next(iter(self.find(filter, projection, sort=sort, limit=1, **options)), None)

    def count_documents(self, filter: typing.Mapping[str, typing.Any], **options: typing.Any) -> int:  # noqa: A002
        _refuse_options("count_documents", options)
        return len(self._matching(filter))

    # -- writes ----------------------------------------------------------------------------------------------

    def insert_one(self, document: Doc, **options: typing.Any) -> InsertOneResult:
        _refuse_options("insert_one", options)
        document.setdefault("_id", ObjectId())  # as pymongo does, on the caller's document
        stored = copy.deepcopy(dict(document))
        self._check_unique(stored)
        self.docs.append(stored)
        return InsertOneResult(stored["_id"], True)

    def find_one_and_update(self, filter: typing.Mapping[str, typing.Any],  # noqa: A002
                            update: typing.Mapping[str, typing.Any], projection: typing.Any = None, *,
                            sort: typing.Any = None, upsert: bool = False,
                            return_document: bool = pymongo.ReturnDocument.BEFORE,
                            **options: typing.Any) -> Doc | None:
        _refuse_options("find_one_and_update", options)
        found = _ordered(self._matching(filter), [] if sort is None else _sort_spec(sort))
        project = _projector(projection)
        if not found:
            if not upsert:
                return None
            inserted = self._upsert(filter, update)
            return project(copy.deepcopy(inserted)) if return_document else None
        before = found[0]
        after = self._update(before, update)
        return project(copy.deepcopy(after if return_document else before))

    def update_one(self, filter: typing.Mapping[str, typing.Any],  # noqa: A002
                   update: typing.Mapping[str, typing.Any], upsert: bool = False,
                   **options: typing.Any) -> UpdateResult:
        _refuse_options("update_one", options)
        found = self._matching(filter)[:1]
        if not found and upsert:
            return UpdateResult({"n": 1, "nModified": 0, "upserted": self._upsert(filter, update)["_id"]}, True)
        modified = sum(self._update(doc, update) != doc for doc in found)
        return UpdateResult({"n": len(found), "nModified": modified}, True)

    def update_many(self, filter: typing.Mapping[str, typing.Any],  # noqa: A002
                    update: typing.Mapping[str, typing.Any], upsert: bool = False,
                    **options: typing.Any) -> UpdateResult:
        _refuse_options("update_many", options)
        found = self._matching(filter)
        if not found and upsert:
            return UpdateResult({"n": 1, "nModified": 0, "upserted": self._upsert(filter, update)["_id"]}, True)
        modified = sum(self._update(doc, update) != doc for doc in found)
        return UpdateResult({"n": len(found), "nModified": modified}, True)

    def delete_one(self, filter: typing.Mapping[str, typing.Any], **options: typing.Any) -> DeleteResult:  # noqa: A002
        _refuse_options("delete_one", options)
        found = self._matching(filter)[:1]
        for doc in found:
            self.docs.remove(doc)
        return DeleteResult({"n": len(found)}, True)

    def delete_many(self, filter: typing.Mapping[str, typing.Any], **options: typing.Any) -> DeleteResult:  # noqa: A002
        _refuse_options("delete_many", options)
        found = self._matching(filter)
        for doc in found:
            self.docs.remove(doc)
        return DeleteResult({"n": len(found)}, True)


class MemoryMongoDatabase:
    """A database of :class:`MemoryCollection`\\ s, made on first use with the unique indexes of their kind."""

    def __init__(self, name: str):
        self.name = name
        self.collections: dict[str, MemoryCollection] = {}

    def __getitem__(self, name: str) -> MemoryCollection:
        collection = self.collections.get(name)
        if collection is None:
            kind = schema.KINDS_BY_COLLECTION.get(name)
            unique = [(index.name, index.keys) for index in (kind.indexes if kind else ()) if index.unique]
            collection = self.collections[name] = MemoryCollection(name, unique)
        return collection

    def get_collection(self, name: str) -> MemoryCollection:
        return self[name]

    @property
    def uncached(self) -> MemoryMongoDatabase:
        return self


class _Admin:
    def command(self, name: str, *args: typing.Any, **kwargs: typing.Any) -> dict[str, typing.Any]:
        if name != "ping":
            raise _unsupported(f"the command {name!r}")
        return {"ok": 1.0}


class MemoryClient:
    """What ``pymongo.MongoClient`` is to :class:`kahuna.storage.Database`: its databases, and ``admin``'s ping."""

    def __init__(self) -> None:
        self.databases: dict[str, MemoryMongoDatabase] = {}
        self.admin = _Admin()

    def __getitem__(self, name: str) -> MemoryMongoDatabase:
        return self.databases.setdefault(name, MemoryMongoDatabase(name))

    def drop_database(self, name: str) -> None:
        self.databases.pop(name, None)

    def close(self) -> None:
        pass


def memory_database(name: str = "kahuna_unit") -> storage.Database:
    """A :class:`kahuna.storage.Database` over :class:`MemoryCollection`\\ s: its ``users``, ``teams``...
    are the real :class:`~kahuna.storage.Documents`, and ``db.db[name]`` a :class:`MemoryCollection` (the
    document cache is left out: it serves reads by ``_id`` that the collections answer alike)."""
    client = MemoryClient()
    with mock.patch("pymongo.MongoClient", lambda *args, **kwargs: client), \
            mock.patch.object(storage, "CachedDatabase", lambda database, cache, cached: database):
        db = storage.Database("mongodb://memory.invalid", name)
    if db.client is not client or not isinstance(db.db, MemoryMongoDatabase):
        raise AssertionError("kahuna.storage.Database no longer makes its client with pymongo.MongoClient() and "
                             "wraps it in CachedDatabase: adapt memory_database() in tests/unit/fakes.py")
    return db


def collection(db: storage.Database, name: str) -> MemoryCollection:
    """The in-memory collection *name* of a :func:`memory_database`."""
    return typing.cast(MemoryCollection, db.db[name])


# -- the agent plane ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentCall:
    """A call an agent received: the method's wire name (``"Kiwi.CreateDnsRecord"``) and its params."""

    agent_id: str
    method: str
    params: dict[str, typing.Any]


Result = dict[str, typing.Any] | typing.Callable[[str, dict[str, typing.Any]], dict[str, typing.Any] | None] | None


@dataclass
class _Script:
    result: Result
    error: BaseException | None
    times: int | None


@dataclass
class FakeAgentPlane:
    """:class:`kahuna.rpc.AgentPlane` over agents that are only ids: those in :attr:`connected` answer.

    A call to an agent that is not connected raises :class:`AgentUnavailable` (and is not recorded); a call to a
    connected one is recorded in :attr:`calls`, then answered by the latest matching :meth:`answer` script (one
    for that agent before one for any agent), or with ``{}``. ``call_any`` takes the first connected agent of
    those named (the real plane takes one at random); ``broadcast`` reports each agent's result or error.
    """

    connected: set[str] = field(default_factory=set)
    calls: list[AgentCall] = field(default_factory=list)
    #: (agent id, reason, close code) of each disconnect().
    disconnections: list[tuple[str, str, int]] = field(default_factory=list)
    _scripts: dict[tuple[str, str | None], list[_Script]] = field(default_factory=dict)

    # -- what a test sets up -----------------------------------------------------------------------------------

    def connect(self, *agent_ids: str) -> None:
        self.connected.update(agent_ids)

    def drop(self, *agent_ids: str) -> None:
        """The agents' connections end (not by Kahuna: nothing is recorded in :attr:`disconnections`)."""
        self.connected.difference_update(agent_ids)

    def answer(self, method: str, result: Result = None, *, error: BaseException | None = None,
               agent_id: str | None = None, times: int | None = None) -> None:
        """Calls of *method* (its wire name) to *agent_id* (to any agent when None) are answered with *result*
        (a dict, or a function of the agent id and the params returning one) or raise *error*: the next *times*
        of them, or all of them from now on when None."""
        self._scripts.setdefault((method, agent_id), []).append(_Script(result, error, times))

    def forget_calls(self) -> None:
        self.calls.clear()

    # -- what a test reads ------------------------------------------------------------------------------------

    def calls_of(self, method: str | None = None, agent_id: str | None = None) -> list[AgentCall]:
        return [call for call in self.calls
                if (method is None or call.method == method) and (agent_id is None or call.agent_id == agent_id)]

    def methods(self, agent_id: str | None = None) -> list[str]:
        """The wire names of the calls (to *agent_id*), in order."""
        return [call.method for call in self.calls_of(agent_id=agent_id)]

    def params_of(self, method: str, agent_id: str | None = None) -> list[dict[str, typing.Any]]:
        return [call.params for call in self.calls_of(method, agent_id)]

    # -- kahuna.rpc.AgentPlane ------------------------------------------------------------------------------

    def _script(self, agent_id: str, method: str) -> _Script | None:
        for key in ((method, agent_id), (method, None)):
            scripts = self._scripts.get(key, [])
            if scripts:
                script = scripts[-1]
                if script.times is not None:
                    script.times -= 1
                    if script.times <= 0:
                        scripts.pop()
                return script
        return None

    def call(self, agent_id: str, method: typing.Any, params: dict[str, typing.Any] | None = None,
             timeout: float | None = None) -> dict[str, typing.Any]:
        wire_name = method.wire_name
        if agent_id not in self.connected:
            raise AgentUnavailable(f"agent {agent_id} is not connected")
        params = copy.deepcopy(params or {})
        self.calls.append(AgentCall(agent_id, wire_name, params))
        script = self._script(agent_id, wire_name)
        if script is None:
            return {}
        if script.error is not None:
            raise script.error
        result = script.result(agent_id, params) if callable(script.result) else script.result
        return copy.deepcopy(result) if result is not None else {}

    def call_any(self, agent_ids: typing.Iterable[str], method: typing.Any,
                 params: dict[str, typing.Any] | None = None,
                 timeout: float | None = None) -> dict[str, typing.Any]:
        for agent_id in dict.fromkeys(agent_ids):
            if agent_id in self.connected:
                return self.call(agent_id, method, params, timeout)
        raise AgentUnavailable(f"no connected agent can serve {method.wire_name}")

    def broadcast(self, agent_ids: typing.Iterable[str], method: typing.Any,
                  params: dict[str, typing.Any] | None = None,
                  timeout: float | None = None) -> dict[str, dict[str, typing.Any] | Exception]:
        results: dict[str, dict[str, typing.Any] | Exception] = {}
        for agent_id in dict.fromkeys(agent_ids):
            try:
                results[agent_id] = self.call(agent_id, method, params, timeout)
            except Exception as exc:  # noqa: BLE001 - reported per agent, as the real plane does
                results[agent_id] = exc
        return results

    def disconnect(self, agent_id: str, reason: str, code: int = 1000) -> bool:
        self.disconnections.append((agent_id, reason, code))
        was_connected = agent_id in self.connected
        self.connected.discard(agent_id)
        return was_connected

    def connected_ids(self, agent_ids: typing.Iterable[str]) -> list[str]:
        return [agent_id for agent_id in dict.fromkeys(agent_ids) if agent_id in self.connected]


# -- mail, owners, limits --------------------------------------------------------------------------------------


@dataclass
class FakeMailer:
    """:class:`kahuna.mail.Mailer` keeping what it sends in :attr:`sent`; :meth:`fail` makes it refuse like
    :class:`kahuna.mail.SmtpMailer` with its relay down."""

    sent: list[Letter] = field(default_factory=list)
    failures: int | None = 0  # sends still to refuse; None: all of them

    def fail(self, times: int | None = None) -> None:
        self.failures = times

    def recover(self) -> None:
        self.failures = 0

    def send(self, letter: Letter) -> None:
        if self.failures is None or self.failures > 0:
            if self.failures is not None:
                self.failures -= 1
            raise Unprocessable(f"cannot send e-mail to {letter.to}: the mail relay is unavailable")
        self.sent.append(letter)

    def to(self, address: str, subject: str = "") -> list[Letter]:
        """The letters sent to *address* (whose subject holds *subject*), oldest first."""
        return [letter for letter in self.sent if letter.to == address and subject in letter.subject]

    def last(self, address: str, subject: str = "") -> Letter:
        letters = self.to(address, subject)
        if not letters:
            raise AssertionError(f"no letter to {address} about {subject!r}; sent: "
                                 f"{[(letter.to, letter.subject) for letter in self.sent]}")
        return letters[-1]


def fact(letter: Letter, label: str) -> str:
    """The value of the *label* row of *letter*."""
    values = [value for name, value in letter.facts if name == label]
    if len(values) != 1:
        raise AssertionError(f"{letter.subject!r} has {len(values)} {label!r} facts: {letter.facts}")
    return values[0]


@dataclass
class InlineOwners:
    """:class:`kahuna.services._common.Owners` that runs each function at once; :attr:`keys` lists the owner
    keys asked for (a tuple for ``run_all``)."""

    keys: list[str | tuple[str, ...]] = field(default_factory=list)

    def run(self, key: str, function: typing.Callable[..., typing.Any], *args: typing.Any,
            **kwargs: typing.Any) -> typing.Any:
        self.keys.append(key)
        return function(*args, **kwargs)

    def run_all(self, keys: typing.Iterable[str], function: typing.Callable[[], typing.Any]) -> typing.Any:
        self.keys.append(tuple(keys))
        return function()


@dataclass
class OpenLimiter:
    """:class:`kahuna.services.throttling.AttemptLimiter` that lets every attempt through (or, with *wait* set,
    refuses each for that many seconds); records what it was asked."""

    wait: float = 0.0
    reserved: list[tuple[tuple[str, int], ...]] = field(default_factory=list)
    refunded: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)

    def reserve(self, limits: typing.Sequence[tuple[str, int]], window: float) -> float:
        self.reserved.append(tuple(limits))
        return self.wait

    def refund(self, key: str) -> None:
        self.refunded.append(key)

    def clear(self, key: str) -> None:
        self.cleared.append(key)
