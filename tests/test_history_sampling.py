"""What is sampled, and how often: the recorder keeps one sample per interval however
often a watched section refreshes; a section sampled while idle gets its watched
cadence back as soon as someone looks."""

from dashboard.history.sampling import Recorder, replication_lag, server_samples, stream_samples
from dashboard.observer.section import Section


class FakeWriter:
    def __init__(self):
        self.ops = []

    def submit(self, op):
        self.ops.append(op)
        return True


class Settings:
    history_interval = 60.0


def test_one_sample_per_interval_however_often_the_section_refreshes():
    writer = FakeWriter()
    recorder = Recorder(writer, Settings())
    for second in range(0, 300, 2):  # a watched overview refreshes every 2 s
        recorder("overview", {"memory": {"used": 1}}, 1020.0 + second)
    assert len(writer.ops) == 5
    recorder("keyspace", {"scan": {}, "result": {"tree": {}}, "audit": None}, None)
    recorder("pubsub:*", {"channels": []}, 2000.0)  # not sampled
    recorder("overview", None, 5000.0)  # a failed reading is not a sample
    assert len(writer.ops) == 6


def test_server_facts_and_replication_lag():
    overview = {
        "memory": {"available": True, "used": 100, "max": 0},
        "stats": {"available": True, "ops_per_sec": 5, "keyspace_hits": 9},
        "clients": {"available": False, "connected": None},
        "keyspace": {"available": True, "total_keys": 3, "total_expires": 1},
        "replication": {"available": True, "replicas": [{"lag": 0}, {"lag": 4}]},
    }
    samples = {m: v for m, _, _, v in server_samples(overview)}
    assert samples["used_memory_bytes"] == 100 and samples["keys_with_ttl"] == 1
    assert samples["connected_clients"] is None  # unavailable is not zero
    assert samples["replication_lag_seconds"] == 4.0
    replica = {"replication": {"available": True, "master_last_io_seconds_ago": 2}}
    assert replication_lag(replica) == 2.0
    assert replication_lag({"replication": {"available": False}}) is None


def test_stream_groups_most_lagging_first_and_broken_streams_skipped():
    reading = {
        "streams": [
            {"key": "a", "error": None, "groups": [{"name": "g", "lag": 1, "pending": 0}]},
            {"key": "b", "error": None, "groups": [{"name": "h", "lag": 9, "pending": 2}]},
            {"key": "c", "error": "WRONGTYPE", "groups": []},
        ]
    }
    samples = list(stream_samples(reading))
    assert [(s[1]["stream"], s[0], s[3]) for s in samples] == [
        ("b", "stream_lag", 9),
        ("b", "stream_pending", 2),
        ("a", "stream_lag", 1),
        ("a", "stream_pending", 0),
    ]


def test_an_idle_sampled_section_gets_its_cadence_back_when_watched():
    clock = [100.0]
    section = Section(
        "overview",
        lambda: {"ok": True},
        period_s=2.0,
        idle_period_s=60.0,
        monotonic=lambda: clock[0],
        clock=lambda: clock[0],
    )
    assert section.claim()
    section.refresh()  # an idle sample: the next one is due in 60 s
    assert section.due_in() == 60.0
    clock[0] += 1
    section.watch()  # someone opens the page
    assert section.due_in() == 1.0  # the watched cadence counts from the last read
