"""The key-based audit rules (dashboard/inspect/audit/keyrules.py) fed pages by hand:
each finding compared whole (message, evidence, severity), at the thresholds' edges,
with the namespace cap and the exemptions. test_audit_rules.py runs them on a real
server end to end; these pin what they conclude from given facts."""

from types import SimpleNamespace

from dashboard.inspect.audit import keyrules
from dashboard.inspect.audit.findings import Finding
from dashboard.inspect.audit.thresholds import config_from_mapping


def _config(**rules):
    return config_from_mapping({"rules": rules})


def _never_lock(key, kind):
    return False


def _missing(groups, cap=10, is_lock=_never_lock, **thresholds):
    thresholds.setdefault("examples", 2)
    rule = keyrules.MissingTtl(_config(**{"missing-ttl": thresholds}), b":", cap, is_lock)
    for page in groups:
        rule.add(page)
    return rule


def test_missing_ttl_in_a_namespace_where_some_keys_expire():
    page = {
        (b"cache", b"page"): [
            (b"cache:page:1", "string", 5000, 10, 1),
            (b"cache:page:2", "string", -1, 10, 1),
            (b"cache:page:3", "hash", -1, 10, 1),
            (b"cache:page:4", "string", -1, 10, 1),
            (b"cache:page:5", "string", None, 10, 1),  # TTL unknown: not counted
        ]
    }
    [found] = _missing([page]).findings()
    assert found == Finding(
        "missing-ttl",
        "cache:page",
        "3 of 4 keys in cache:page have no TTL (some keys of it do expire)",
        {
            "keys": 4,
            "without_ttl": 3,
            "with_ttl": 1,
            "share": 0.75,
            "examples": ["cache:page:2", "cache:page:3"],  # at most `examples`
        },
        severity=None,
        weight=3,
    )


def test_missing_ttl_deliberate_or_meant_to_expire():
    persistent = {(b"user",): [(b"user:1", "hash", -1, 1, 1), (b"user:2", "hash", -1, 1, 1)]}
    [found] = _missing([persistent]).findings()
    assert found.severity == "info"  # nothing there expires: looks deliberate
    assert found.message == (
        "2 of 2 keys in user have no TTL "
        "(no key of it has a TTL: probably deliberate, exempt it if so)"
    )
    volatile = {(b"session",): [(b"session:1", "hash", -1, 1, 1)]}
    [found] = _missing([volatile], volatile_words=["Session"]).findings()
    assert found.severity is None and found.message == (
        "1 of 1 keys in session have no TTL (its name says the data is meant to expire)"
    )


def test_missing_ttl_thresholds_exemptions_and_locks():
    page = {
        (b"a",): [(b"a:1", "string", -1, 1, 1), (b"a:2", "string", 100, 1, 1)],
        (b"b", b"c"): [(b"b:c:1", "string", -1, 1, 1)],
        (b"q",): [(b"q:1", "stream", -1, 1, 1)],
        (b"lk",): [(b"lk:1", "string", -1, 1, 1)],
    }

    def is_lock(key, kind):
        return key.startswith(b"lk:")

    assert {f.subject for f in _missing([page], is_lock=is_lock).findings()} == {"a", "b:c"}
    # exactly at the thresholds still fires; one key or share short does not
    assert {f.subject for f in _missing([page], min_keys=1, min_share=0.5).findings()} >= {"a"}
    assert "a" not in {f.subject for f in _missing([page], min_share=0.51).findings()}
    assert {f.subject for f in _missing([page], min_keys=2).findings()} == set()
    rule = _missing([page], exempt_namespaces=["b"], exempt_types=["string", "stream"])
    assert rule.findings() == [] and rule.exempted_keys == 1  # b:c by its parent b
    assert keyrules.ns_matches((), b":", ["(root)"]) and not keyrules.ns_matches((), b":", ["x"])


def test_missing_ttl_folds_namespaces_past_the_cap():
    pages = [{(f"n{i}".encode(),): [(f"n{i}:k".encode(), "string", -1, 1, 1)]} for i in range(4)]
    subjects = sorted(f.subject for f in _missing(pages, cap=2).findings())
    assert subjects == ["(other)", "n0", "n1"]
    other = next(f for f in _missing(pages, cap=2).findings() if f.subject == "(other)")
    assert other.evidence["keys"] == 2


def _over(rule_class, rule, pages, **thresholds):
    observer = rule_class(_config(**{rule: thresholds}), b":", 10)
    for page in pages:
        observer.add(page)
    return observer.findings()


def test_big_strings_over_the_limit_only():
    page = {
        (b"blob",): [
            (b"blob:1", "string", -1, 900, 100),  # exactly at the limit: fine
            (b"blob:2", "string", -1, 900, 101),
            (b"blob:3", "string", -1, 2000, None),  # no STRLEN: its memory decides
            (b"blob:4", "hash", -1, 9000, 500),  # not a string
        ]
    }
    [found] = _over(keyrules.BigString, "big-string", [page], max_bytes=100, examples=5)
    assert found == Finding(
        "big-string",
        "blob",
        "2 string values in blob exceed 100 bytes (largest 2,000 bytes)",
        {
            "keys_over": 2,
            "max_bytes": 100,
            "largest_bytes": 2000,
            "top": [
                {"key": "blob:3", "length": 2000, "memory": 2000},
                {"key": "blob:2", "length": 101, "memory": 900},
            ],
        },
        weight=2000,
    )


def test_big_collections_by_elements_or_bytes():
    page = {
        (b"c",): [
            (b"c:h", "hash", -1, 10, 6),
            (b"c:s", "set", -1, 10, 5),  # at the limit: fine
            (b"c:l", "list", -1, 5000, 2),  # few elements, too many bytes
            (b"c:str", "string", -1, 9999, 9999),  # not a collection
        ]
    }
    limits = {"max_hash_fields": 5, "max_set_members": 5, "max_zset_members": 5}
    limits |= {"max_list_elements": 5, "max_bytes": 1000, "examples": 1}
    [found] = _over(keyrules.BigCollection, "big-collection", [page], **limits)
    assert found == Finding(
        "big-collection",
        "c",
        "2 hash/list keys in c are big (largest 6 elements)",
        {
            "keys_over": 2,
            "types": ["hash", "list"],
            "limits": {"hash": 5, "set": 5, "zset": 5, "list": 5, "bytes": 1000},
            "top": [{"key": "c:h", "type": "hash", "elements": 6, "memory": 10}],
        },
        weight=6,
    )


def test_long_key_names():
    name = b"k:" + b"x" * 30
    page = {(b"k",): [(name, "string", -1, 1, 1), (b"k:" + b"y" * 8, "string", -1, 1, 1)]}
    [found] = _over(keyrules.LongKeyNames, "long-key-names", [page], max_bytes=10, examples=3)
    assert found == Finding(
        "long-key-names",
        "k",
        "1 keys in k have names over 10 bytes (longest 32)",
        {
            "keys_over": 1,
            "max_bytes": 10,
            "longest_bytes": 32,
            "examples": [{"key": name.decode(), "length": 32}],
        },
        weight=32,
    )
    assert _over(keyrules.LongKeyNames, "long-key-names", [page], max_bytes=32) == []


def test_keys_without_a_namespace():
    page = {
        (): [(b"plain1", "string", -1, 1, 1), (b"plain2", "string", -1, 1, 1)],
        (b"ns",): [(b"ns:1", "string", -1, 1, 1), (b"ns:2", "string", -1, 1, 1)],
    }
    config = _config(**{"no-namespace": {"min_keys": 2, "examples": 1}})
    rule = keyrules.NoNamespace(config, b":")
    rule.add(page)
    assert rule.findings() == [
        Finding(
            "no-namespace",
            "(root)",
            "2 keys (50.0%) have no ':' in their name",
            {"keys": 2, "share": 0.5, "delimiter": ":", "examples": ["plain1"]},
            weight=2,
        )
    ]
    config = _config(**{"no-namespace": {"min_keys": 3}})
    rule = keyrules.NoNamespace(config, b":")
    rule.add(page)
    assert rule.findings() == []


def test_top_n_keeps_the_biggest_once_each_ties_by_key():
    top = keyrules.TopN(2)
    for metric, key in [(5, b"a"), (9, b"b"), (5, b"c"), (9, b"b"), (7, b"d"), (7, b"c")]:
        top.offer(metric, key)
    assert top.sorted() == [(9, b"b", None), (7, b"d", None)]
    none = keyrules.TopN(0)
    none.offer(1, b"a")
    assert none.sorted() == []


def test_top_n_lists_a_key_scan_returned_twice_once_before_it_is_full():
    top = keyrules.TopN(3)
    for metric, key in [(5, b"a"), (5, b"a"), (4, b"b")]:  # SCAN may repeat a key
        top.offer(metric, key, "extra")
    assert top.sorted() == [(5, b"a", "extra"), (4, b"b", "extra")]


class _Layouts:
    """What NoNamespace reads of a LayoutTally: each page's library marks per key (-1:
    none) and which libraries the scan showed to be there."""

    def __init__(self, page, present):
        self.page, self._present = page, present

    def present(self):
        return self._present


def test_keys_without_a_namespace_set_aside_for_libraries_shown_to_be_there():
    fact = lambda key: (key, "string", -1, 1, 1)  # noqa: E731
    page = {
        (): [fact(b"plain1"), fact(b"rq1"), fact(b"cel1"), fact(b"plain2")],
        (b"ns",): [fact(b"ns:1"), fact(b"ns:2"), fact(b"ns:3")],
    }
    layouts = _Layouts({(): [-1, 0, 1, -1]}, present={0})  # library 1 not shown: plain
    config = _config(**{"no-namespace": {"min_keys": 1, "examples": 2}})
    rule = keyrules.NoNamespace(config, b":", layouts)
    rule.add(page)
    assert rule.findings() == [
        Finding(
            "no-namespace",
            "(root)",
            "3 keys (42.9%) have no ':' in their name",
            {"keys": 3, "share": 0.4286, "delimiter": ":", "examples": ["plain1", "plain2"]},
            weight=3,
        )
    ]


def test_one_key_without_a_namespace_and_a_delimiter_that_is_not_text():
    config = _config(**{"no-namespace": {"min_keys": 1}})
    rule = keyrules.NoNamespace(config, b"\xff")
    rule.add({(): [(b"a:b", "string", -1, 1, 1)]})
    [found] = rule.findings()
    assert found.message == "1 keys (100.0%) have no '\\xff' in their name"
    assert found.evidence["delimiter"] == "\\xff"


class _KnownLayouts(_Layouts):
    """Also the libraries by index, as LayoutTally.layouts holds them."""

    def __init__(self, page, present, libraries):
        super().__init__(page, present)
        self.layouts = [SimpleNamespace(library=name) for name in libraries]


def test_missing_ttl_sets_aside_keys_of_libraries_shown_to_be_there():
    fact = lambda key, ttl: (key, "string", ttl, 1, 1)  # noqa: E731
    page = {
        (b"jobs",): [
            fact(b"jobs:1", -1),
            fact(b"jobs:rq1", -1),  # rq's, and rq is there: counted apart
            fact(b"jobs:cel1", -1),  # celery's, but celery was not shown: ordinary
            fact(b"jobs:cel2", 5000),
            fact(b"jobs:cel3", -1),
            *(fact(f"jobs:{n}".encode(), 1000) for n in (2, 3, 4)),
        ]
    }
    layouts = _KnownLayouts({(b"jobs",): [-1, 0, 1, 1, 1, -1, -1, -1]}, {0}, ["rq", "celery"])
    config = _config(**{"missing-ttl": {"min_keys": 1, "min_share": 0.4, "examples": 2}})
    rule = keyrules.MissingTtl(config, b":", 10, _never_lock, layouts)
    rule.add(page)
    assert rule.findings() == [
        Finding(
            "missing-ttl",
            "jobs",
            "3 of 7 keys in jobs have no TTL (some keys of it do expire)",
            {
                "keys": 7,
                "without_ttl": 3,
                "with_ttl": 4,
                "share": 0.4286,
                "examples": ["jobs:1", "jobs:cel1"],
                "known_layout_keys": {"rq": 1},
            },
            severity=None,
            weight=3,
        )
    ]


def test_namespace_globs_match_a_namespace_or_an_ancestor_and_the_root_by_name():
    assert keyrules.ns_matches((b"cache", b"page"), b":", ["cache"])
    assert keyrules.ns_matches((b"cache", b"page"), b":", ["cache:p*"])
    assert not keyrules.ns_matches((b"cache",), b":", ["cache:page"])
    assert not keyrules.ns_matches((b"a",), b":", [""])  # "" names the root only
    assert keyrules.ns_matches((), b":", [""]) and keyrules.ns_matches((), b":", ["(root)"])
    assert keyrules.ns_matches((b"bin\xff",), b":", ["bin*"])  # not UTF-8: no exception


def test_missing_ttl_counts_past_exempt_namespaces_unknown_ttls_and_locks():
    def is_lock(key, kind):
        return key.startswith(b"lk") and kind == "string"

    pages = [
        {
            (b"tmp",): [(b"tmp:1", "string", -1, 1, 1)],  # exempt, first in the page
            (b"a",): [
                (b"a:0", "string", None, 1, 1),  # TTL unknown: passed over
                (b"lk1", "string", -1, 1, 1),  # a lock: passed over
                (b"lk2", "hash", -1, 1, 1),  # not a lock by its type: counted
                (b"a:1", "string", 0, 1, 1),  # PTTL 0: it has a TTL (expiring now)
                (b"a:2", "string", -1, 1, 1),
            ],
        },
        {(b"tmp",): [(b"tmp:2", "string", -1, 1, 1), (b"tmp:3", "string", -1, 1, 1)]},
    ]
    rule = _missing(pages, is_lock=is_lock, exempt_namespaces=["tmp"])
    [found] = rule.findings()
    assert found.evidence == {
        "keys": 3,
        "without_ttl": 2,
        "with_ttl": 1,
        "share": 0.6667,
        "examples": ["lk2", "a:2"],
    }


def test_big_collections_past_other_types_at_the_byte_edge_and_without_a_count():
    config = _config(
        **{"big-collection": {"max_hash_fields": 10, "max_bytes": 1000, "examples": 3}}
    )
    rule = keyrules.BigCollection(config, b":", 10)
    rule.add(
        {
            (b"c",): [
                (b"c:s", "string", -1, 5000, 5000),  # not a collection
                (b"c:h", "hash", -1, 1000, 3),  # at the byte limit: not over
                (b"c:big", "hash", -1, 1001, None),  # over by bytes, count unknown
            ]
        }
    )
    [found] = rule.findings()
    assert found.evidence["keys_over"] == 1
    assert found.evidence["top"] == [
        {"key": "c:big", "type": "hash", "elements": 0, "memory": 1001}
    ]


def test_a_string_of_unknown_length_is_never_measured_as_big():
    config = _config(**{"big-string": {"max_bytes": 10}})
    rule = keyrules.BigString(config, b":", 10)
    rule.add({(b"s",): [(b"s:1", "string", -1, None, None)]})
    assert rule.findings() == []


def test_keys_without_a_namespace_from_pages_with_and_without_library_marks():
    fact = lambda key: (key, "string", -1, 1, 1)  # noqa: E731
    layouts = _Layouts({(): [-1, 1]}, present={1})
    config = _config(**{"no-namespace": {"min_keys": 1, "examples": 2}})
    rule = keyrules.NoNamespace(config, b":", layouts)
    rule.add({(): [fact(b"marked-plain"), fact(b"libkey")]})
    layouts.page = {}  # a page where no library key was seen
    rule.add({(): [fact(b"unmarked-plain")]})
    [found] = rule.findings()
    assert found.evidence["keys"] == 2  # libkey is set aside: its library is there
    assert found.evidence["examples"] == ["marked-plain", "unmarked-plain"]


def test_top_n_ties_are_broken_by_key_not_by_what_rides_along():
    from dashboard.inspect.audit import keyrules

    top = keyrules.TopN(3)
    top.offer(5, b"b", "1")
    top.offer(5, b"a", "2")
    assert top.sorted() == [(5, b"a", "2"), (5, b"b", "1")]
