"""Known key layouts of common Redis libraries, recognised from key names plus types.

One table (:data:`LAYOUTS`), two users: the audit (``missing-ttl`` and ``no-namespace``
leave a known layout's keys to the report's ``known_layouts`` section, docs/rules.md)
and the keyspace rollup (each node's ``owner``, docs/scan.md, where the table is
documented with the source each row was read from).

A library counts as *present* only on evidence: keys of at least ``min_roles``
different evidence roles of its layout, each of the type the library writes there
(a ``queue:orders`` list alone is not Sidekiq; beside a ``queues`` set it is), or a
``strong`` role seen on at least two keys (``celery-task-meta-<id>`` strings). Until
then a candidate key is an ordinary key: nothing is silenced on a lucky prefix. Only
the scan's facts are used (name, type, TTL); no value is read.

Cost: a role has a literal ``prefix``; a namespace is tested only against the roles
whose prefix can occur in it (cached per namespace), so the scan's hot path pays one
dict lookup for namespaces no library uses. Memory is bounded: counters per role and
per library, at most ``max_namespaces`` namespaces and a few examples per library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dashboard.keyid import display_key

EXAMPLES = 5
SHOWN_NAMESPACES = 20
_ANY: tuple[str, ...] = ()


@dataclass(frozen=True)
class Role:
    """One kind of key of a layout: a name regex (whole key) and the types written there."""

    name: str
    prefix: bytes  # literal start of every key of this role (candidate filter)
    pattern: bytes  # regex on the whole key; non-capturing groups only
    types: tuple[str, ...] = _ANY  # () = any type
    evidence: bool = True  # counts toward the library being present
    strong: bool = False  # two keys of this role alone are enough evidence


@dataclass(frozen=True)
class Layout:
    library: str
    note: str  # why these keys may lack a TTL: shown with the audit's known layouts
    roles: tuple[Role, ...]
    min_roles: int = 2


def _r(name: str, prefix: bytes, rest: bytes = b"", *types: str, **flags: bool) -> Role:
    return Role(name, prefix, re.escape(prefix) + rest, types, **flags)


_SK_DATE = rb":\d{4}-?\d{2}-?\d{2}"
_BULL = rb"[^:]+:"
_RQ_REGISTRIES = rb"(?:wip|finished|failed|deferred|scheduled|canceled|ready|registry)"
_BULL_ZSETS = rb"(?:delayed|prioritized|completed|failed|waiting-children|repeat|marker)"
_LIMITS_WINDOW = rb"/[1-9][0-9]*/[1-9][0-9]*/(?:second|minute|hour|day|month|year)"
_LIMITS_SLIDING = rb".+" + _LIMITS_WINDOW + rb"\}(?:/-1)?"

LAYOUTS: tuple[Layout, ...] = (
    Layout(
        "rq",
        "rq keeps queues, queued and running jobs, registries and worker sets without a "
        "TTL on purpose; finished and failed jobs expire by result_ttl / failure_ttl",
        (
            _r("queues", b"rq:queues", b"", "set"),
            _r("queue", b"rq:queue:", rb".+", "list"),
            _r("job", b"rq:job:", rb"[^:]+", "hash"),
            _r("job dependencies", b"rq:job:", rb".*:(?:dependents|dependencies)", "set"),
            _r("registry", b"rq:", _RQ_REGISTRIES + rb":.+", "zset"),
            _r("workers", b"rq:workers", rb"(?::.+)?", "set"),
            _r("worker", b"rq:worker:", rb".+", "hash", "set", "zset"),
            _r("results", b"rq:results:", rb".+", "stream"),
            _r("executions", b"rq:execution", rb"s?:.+", "hash", "zset"),
            _r("other rq keys", b"rq:", rb".+", evidence=False),  # locks, flags, cron, groups
        ),
    ),
    Layout(
        "celery/kombu",
        "kombu keeps queues, bindings and unacknowledged messages without a TTL on purpose; "
        "celery's task results expire by result_expires",
        (
            _r("binding", b"_kombu.binding.", rb".+", "set"),
            _r("binding deadlines", b"_kombu.binding_deadlines", b"", "zset"),
            _r("permanent binding", b"_kombu.binding_permanent.", rb".+", "set"),
            _r("other kombu keys", b"_kombu.", rb".+", evidence=False),
            _r("queue", b"celery", rb"(?:\x06\x16[0-9])?", "list"),  # + priority queues
            _r("unacked", b"unacked", b"", "hash"),
            _r("unacked index", b"unacked_index", b"", "zset"),
            _r("unacked mutex", b"unacked_mutex", b"", "string", evidence=False),
            _r("task result", b"celery-task-meta-", rb".+", "string", strong=True),
            _r("group result", b"celery-taskset-meta-", rb".+", "string", "list", "zset"),
            _r("chord", b"chord-unlock-", rb".+", "string", evidence=False),
        ),
    ),
    Layout(
        "Sidekiq",
        "Sidekiq keeps queues, the schedule, retry and dead sets, the process set and the "
        "processed/failed totals without a TTL on purpose",
        (
            _r("queues", b"queues", b"", "set"),
            _r("queue", b"queue:", rb".+", "list"),
            _r("processes", b"processes", b"", "set"),
            _r("stats", b"stat:", rb"(?:processed|failed)", "string"),
            _r("daily stats", b"stat:", rb"(?:processed|failed)" + _SK_DATE, "string"),
            _r("schedule", b"schedule", b"", "zset", evidence=False),
            _r("retry", b"retry", b"", "zset", evidence=False),
            _r("dead", b"dead", b"", "zset", evidence=False),
        ),
    ),
    Layout(
        "BullMQ",
        "BullMQ keeps queue state, job hashes, logs and events without a TTL on purpose "
        "(removeOnComplete / removeOnFail trim finished jobs)",
        (
            _r("meta", b"bull:", _BULL + b"meta", "hash"),
            _r("id counter", b"bull:", _BULL + b"id", "string"),
            _r("events", b"bull:", _BULL + b"events", "stream"),
            _r("state list", b"bull:", _BULL + b"(?:wait|paused|active)", "list"),
            _r("state set", b"bull:", _BULL + _BULL_ZSETS, "zset"),
            _r("job", b"bull:", _BULL + rb"[^:]+", "hash"),
            _r("other BullMQ keys", b"bull:", rb".+", evidence=False),  # logs, locks, dedup
        ),
    ),
    Layout(
        "limits",
        "limits (Flask-Limiter) gives every window a TTL; keys without one are not its own",
        (
            _r("window", b"LIMITS:", rb"[^{].*" + _LIMITS_WINDOW, "string", "list", strong=True),
            _r("sliding window", b"LIMITS:{", _LIMITS_SLIDING, "string", strong=True),
        ),
        min_roles=1,
    ),
    Layout(
        "python-redis-lock",
        "python-redis-lock's wake-up lists expire after signal_expire",
        (_r("signal", b"lock-signal:", rb".+", "list", strong=True),),
    ),
)
# redis-py's Lock has no layout of its own (the key is whatever name the caller
# passes), so the scan cannot attribute it; /locks recognises it by its token.


# (literal prefixes, fullmatch of the roles' alternation, role indexes)
_Matcher = tuple[tuple[bytes, ...], Any, tuple[int, ...]]


@dataclass
class _Library:
    keys: int = 0
    without_ttl: int = 0
    examples: list[bytes] | None = None
    namespaces: dict[tuple[bytes, ...], None] | None = None
    more_namespaces: int = 0


class LayoutTally:
    """Recognises known layouts page by page and keeps the evidence (bounded).

    ``add(ns, facts)`` returns one library index per fact (-1: none) or None when no
    library can have keys in ``ns``; ``present()`` says which libraries the evidence
    shows; ``owner(ns, direct_keys)`` names the library owning every key of ``ns``.
    """

    def __init__(
        self,
        delimiter: bytes = b":",
        max_namespaces: int = 10_000,
        layouts: tuple[Layout, ...] = LAYOUTS,
    ) -> None:
        self.delimiter = delimiter
        self.max_namespaces = max_namespaces
        self.layouts = layouts
        self.roles = [(lib, role) for lib, lay in enumerate(layouts) for role in lay.roles]
        self._role_lib = [lib for lib, _ in self.roles]
        self._role_types = [role.types for _, role in self.roles]
        self._role_regex = [re.compile(role.pattern, re.DOTALL).fullmatch for _, role in self.roles]
        self.role_keys = [0] * len(self.roles)
        self.libraries = [_Library() for _ in layouts]
        self.by_ns: dict[tuple[bytes, ...] | None, dict[int, int]] = {}
        self._candidates: dict[tuple[bytes, ...], dict[int, _Matcher] | None] = {}
        self._compiled: dict[tuple[int, ...], _Matcher] = {}
        self.page: dict[tuple[bytes, ...], list[int] | None] = {}
        self._present: set[int] | None = None

    # -- classification ---------------------------------------------------------------
    def _matcher(self, ns: tuple[bytes, ...]) -> dict[int, _Matcher] | None:
        """Per first byte of a key, the prefixes and regex of the roles that may occur in
        ``ns`` (None: none can); cached per namespace. Most keys of a namespace no library
        uses cost nothing; most others fail on a C-level ``startswith``."""
        found = self._candidates.get(ns, False)
        if found is not False:
            return found
        head = self.delimiter.join(ns) + self.delimiter if ns else b""
        by_byte: dict[int, list[int]] = {}
        for i, (_, role) in enumerate(self.roles):
            if role.prefix.startswith(head) or head.startswith(role.prefix):
                by_byte.setdefault(role.prefix[0], []).append(i)
        found = {byte: self._compile(tuple(picked)) for byte, picked in by_byte.items()} or None
        if len(self._candidates) >= 65_536:
            self._candidates.clear()
        self._candidates[ns] = found
        return found

    def _compile(self, picked: tuple[int, ...]) -> _Matcher:
        matcher = self._compiled.get(picked)
        if matcher is None:
            roles = [self.roles[i][1] for i in picked]
            alternatives = b"|".join(b"(" + role.pattern + b")" for role in roles)
            regex = re.compile(alternatives, re.DOTALL).fullmatch
            prefixes = tuple(dict.fromkeys(role.prefix for role in roles))
            matcher = self._compiled[picked] = (prefixes, regex, picked)
        return matcher

    def _match(self, matcher: _Matcher, key: bytes, kind: str) -> int | None:
        """The role ``key`` of type ``kind`` plays among the matcher's roles, or None."""
        if not key.startswith(matcher[0]) or (hit := matcher[1](key)) is None:
            return None
        role = matcher[2][hit.lastindex - 1]
        types = self._role_types[role]
        return role if not types or kind in types else self._retyped(matcher, key, kind, role)

    def _retyped(self, matcher: _Matcher, key: bytes, kind: str, first: int) -> int | None:
        """The first role whose name matched has another type: try the others."""
        for i in matcher[2]:
            types = self._role_types[i]
            if i != first and (not types or kind in types) and self._role_regex[i](key):
                return i
        return None

    def role_of(self, key: bytes, kind: str, ns: tuple[bytes, ...] = ()) -> int | None:
        """The index of the role ``key`` (of type ``kind``) plays in ``ns``, or None."""
        dispatch = self._matcher(ns)
        matcher = dispatch.get(key[0]) if dispatch and key else None
        return None if matcher is None else self._match(matcher, key, kind)

    # -- tallying -----------------------------------------------------------------------
    def add(self, ns: tuple[bytes, ...], facts: list[tuple]) -> list[int] | None:
        """Count one namespace's facts of a page. Returns one library index per fact
        (-1: none), or None when no fact is a known layout's key (the common case).
        The hot loop inlines :meth:`_match`: it runs for every key of a candidate
        namespace."""
        dispatch = self._matcher(ns)
        if dispatch is None:
            return None
        marks: list[int] | None = None
        seen: dict[int, int] = {}
        get, role_lib, role_types = dispatch.get, self._role_lib, self._role_types
        for i, fact in enumerate(facts):
            key = fact[0]
            matcher = get(key[0]) if key else None
            if matcher is None or not key.startswith(matcher[0]):
                continue
            hit = matcher[1](key)
            if hit is None:
                continue
            role = matcher[2][hit.lastindex - 1]
            types = role_types[role]
            if types and fact[1] not in types:
                role = self._retyped(matcher, key, fact[1], role)
                if role is None:
                    continue
            if marks is None:
                marks = [-1] * len(facts)
            marks[i] = role_lib[role]
            seen[role] = seen.get(role, 0) + 1
            if fact[2] == -1:
                self._without_ttl(role_lib[role], key)
        if seen:
            self._record(ns, seen)
        return marks

    def add_page(self, groups: dict[tuple[bytes, ...], list[tuple]]) -> None:
        """Tally a page grouped by namespace; ``page`` keeps its marks for the rules."""
        self.page = {ns: self.add(ns, facts) for ns, facts in groups.items()}

    def _without_ttl(self, lib: int, key: bytes) -> None:
        library = self.libraries[lib]
        library.without_ttl += 1
        if library.examples is None:
            library.examples = []
        if len(library.examples) < EXAMPLES:
            library.examples.append(key)

    def _record(self, ns: tuple[bytes, ...], seen: dict[int, int]) -> None:
        """Fold one namespace's matches of a page into the evidence and the counts."""
        self._present = None
        counts = self._ns_counts(ns)
        for role, keys in seen.items():
            lib = self._role_lib[role]
            self.role_keys[role] += keys
            self.libraries[lib].keys += keys
            counts[lib] = counts.get(lib, 0) + keys
            self._note_namespace(self.libraries[lib], ns)

    def _ns_counts(self, ns: tuple[bytes, ...]) -> dict[int, int]:
        counts = self.by_ns.get(ns)
        if counts is None:
            key = ns if len(self.by_ns) < self.max_namespaces else None
            counts = self.by_ns.setdefault(key, {})
        return counts

    @staticmethod
    def _note_namespace(library: _Library, ns: tuple[bytes, ...]) -> None:
        if library.namespaces is None:
            library.namespaces = {}
        if ns in library.namespaces:
            return
        if len(library.namespaces) < SHOWN_NAMESPACES:
            library.namespaces[ns] = None
        else:
            library.more_namespaces = 1

    def merge(self, other: LayoutTally) -> None:
        """Fold in another tally of the same layouts (the keyspace scan keeps one rollup,
        hence one tally, per shard, so that a shard can be walked again on its own)."""
        self._present = None
        for i, keys in enumerate(other.role_keys):
            self.role_keys[i] += keys
        for mine, theirs in zip(self.libraries, other.libraries, strict=True):
            mine.keys += theirs.keys
            mine.without_ttl += theirs.without_ttl
            for key in theirs.examples or ():
                if mine.examples is None:
                    mine.examples = []
                if len(mine.examples) < EXAMPLES:
                    mine.examples.append(key)
            for ns in theirs.namespaces or ():
                self._note_namespace(mine, ns)
            mine.more_namespaces |= theirs.more_namespaces
        for ns, counts in other.by_ns.items():
            target = self._ns_counts(ns) if ns is not None else self.by_ns.setdefault(None, {})
            for lib, keys in counts.items():
                target[lib] = target.get(lib, 0) + keys

    # -- evidence -----------------------------------------------------------------------
    def present(self) -> set[int]:
        """Indexes of the libraries whose layout the evidence shows."""
        if self._present is not None:
            return self._present
        out = set()
        for lib, layout in enumerate(self.layouts):
            roles = [(r, self.role_keys[i]) for i, (n, r) in enumerate(self.roles) if n == lib]
            seen = sum(1 for role, keys in roles if role.evidence and keys)
            strong = any(role.strong and keys >= 2 for role, keys in roles)
            if strong or (seen >= max(layout.min_roles, 1) and self.libraries[lib].keys >= 2):
                out.add(lib)
        self._present = out
        return out

    def owner(self, ns: tuple[bytes, ...] | None, direct_keys: int) -> str | None:
        """The library that wrote every one of the ``direct_keys`` keys of ``ns``."""
        counts = self.by_ns.get(ns) if ns is not None else None
        if not counts or len(counts) != 1 or direct_keys <= 0:
            return None
        ((lib, keys),) = counts.items()
        return self.layouts[lib].library if keys == direct_keys and lib in self.present() else None

    def summary(self) -> list[dict[str, Any]]:
        """The present libraries for reports: keys, keys without TTL, roles, namespaces."""
        out = []
        for lib in sorted(self.present()):
            layout, library = self.layouts[lib], self.libraries[lib]
            names = [
                display_key(self.delimiter.join(ns), 200) if ns else "(root)"
                for ns in library.namespaces or ()
            ]
            out.append(
                {
                    "library": layout.library,
                    "keys": library.keys,
                    "without_ttl": library.without_ttl,
                    "roles": {
                        role.name: self.role_keys[i]
                        for i, (n, role) in enumerate(self.roles)
                        if n == lib and self.role_keys[i]
                    },
                    "namespaces": names,
                    "more_namespaces": bool(library.more_namespaces),
                    "examples": [display_key(k, 200) for k in library.examples or ()],
                    "note": layout.note,
                }
            )
        return out
