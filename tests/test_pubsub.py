"""Pub/Sub on a real redis-server: JSON, patterns, reconnects, the read side."""

import queue
import time

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from dashboard import gate
from dashboard.connection import connect
from dashboard.patterns.pubsub import Subscriber, channels_state, decode_payload, publish


def _collector():
    inbox: queue.Queue = queue.Queue()
    return inbox, inbox.put


def _next(inbox, timeout=5.0):
    return inbox.get(timeout=timeout)


def test_publish_json_round_trip(r):
    inbox, handler = _collector()
    with Subscriber(r, channels=["t:json"], handler=handler) as sub:
        assert sub.wait_subscribed(5)
        assert publish(r, "t:json", {"order": 7, "items": ["a", "ü"]}) == 1
        message = _next(inbox)
    assert message.channel == "t:json"
    assert message.pattern is None
    assert message.data == {"order": 7, "items": ["a", "ü"]}
    assert sub.received == 1
    assert publish(r, "t:json", {"late": True}) == 0  # nobody listens any more


def test_non_json_payloads_fall_back_to_text_or_bytes(r):
    inbox, handler = _collector()
    with Subscriber(r, channels=["t:raw"], handler=handler) as sub:
        assert sub.wait_subscribed(5)
        r.publish("t:raw", b"\xff\x00binary")
        r.publish("t:raw", "plain words")
        publish(r, "t:raw", b'{"as": "is"}')  # bytes are published untouched
        got = [_next(inbox).data for _ in range(3)]
    assert got == [b"\xff\x00binary", "plain words", {"as": "is"}]
    assert decode_payload("[1, 2]") == [1, 2]


def test_pattern_subscription_receives_from_two_channels(r):
    inbox, handler = _collector()
    with Subscriber(r, patterns=["shop:*"], handler=handler) as sub:
        assert sub.wait_subscribed(5)
        publish(r, "shop:orders", {"n": 1})
        publish(r, "shop:payments", {"n": 2})
        publish(r, "other:x", {"n": 3})
        first, second = _next(inbox), _next(inbox)
    assert {(first.channel, first.data["n"]), (second.channel, second.data["n"])} == {
        ("shop:orders", 1),
        ("shop:payments", 2),
    }
    assert first.pattern == second.pattern == "shop:*"
    assert inbox.empty()


def test_handler_error_is_counted_not_fatal(r):
    inbox, handler = _collector()

    def flaky(message):
        if message.data == "boom":
            raise RuntimeError("bad message")
        handler(message)

    with Subscriber(r, channels=["t:err"], handler=flaky) as sub:
        assert sub.wait_subscribed(5)
        publish(r, "t:err", "boom")
        publish(r, "t:err", "fine")
        assert _next(inbox).data == "fine"
    assert sub.handler_errors == 1
    assert "bad message" in sub.last_error


@pytest.mark.parametrize("retries", [None, 0], ids=["redis-py-retries", "no-retries"])
def test_reconnects_and_resubscribes_after_client_kill(private_server, retries):
    """With retries redis-py reconnects under the subscriber; without, the subscriber does."""
    server = private_server()
    options = {} if retries is None else {"retry": Retry(NoBackoff(), retries)}
    client = redis.Redis(port=server.port, socket_timeout=5, **options)
    admin = redis.Redis(port=server.port, socket_timeout=5)
    inbox, handler = _collector()
    sub = Subscriber(client, channels=["news", "alerts"], patterns=["orders:*"], handler=handler)
    with sub:
        assert sub.wait_subscribed(5)
        publish(admin, "news", "before")
        assert _next(inbox).data == "before"

        assert admin.client_kill_filter(_type="pubsub") >= 1
        wanted = {"news", "alerts", "orders:1"}
        seen: set[str] = set()
        deadline = time.monotonic() + 20
        while seen != wanted and time.monotonic() < deadline:
            for channel in wanted - seen:
                publish(admin, channel, "after")
            try:
                while True:
                    message = inbox.get(timeout=0.05)
                    if message.data == "after":
                        seen.add(message.channel)
            except queue.Empty:
                pass
        assert seen == wanted, f"only got {seen} after the kill; stats {sub.stats()}"
        assert sub.reconnects >= 1
        assert sub.disconnects >= 1
        assert dict(admin.pubsub_numsub("news", "alerts")) == {b"news": 1, b"alerts": 1}
        assert admin.pubsub_numpat() == 1
    client.close()
    admin.close()


def test_backoff_is_exponential_capped_and_reset_once_subscribed(private_server):
    server = private_server()
    client = redis.Redis(port=server.port, socket_timeout=5, retry=Retry(NoBackoff(), 0))
    admin = redis.Redis(port=server.port, socket_timeout=5)
    failures = []
    delays = []

    def factory():
        if len(failures) < 5:
            failures.append(1)
            raise redis.ConnectionError("server is away")
        return client

    inbox, handler = _collector()
    sub = Subscriber(
        factory,
        channels=["t:backoff"],
        handler=handler,
        backoff_base=0.1,
        backoff_max=0.5,
        sleep=delays.append,
    )
    with sub:
        assert sub.wait_subscribed(5)
        publish(admin, "t:backoff", 1)
        assert _next(inbox).data == 1
        assert delays == [0.1, 0.2, 0.4, 0.5, 0.5]
        assert (sub.disconnects, sub.reconnects) == (5, 1)
        assert "server is away" in sub.last_error

        admin.client_kill_filter(_type="pubsub")  # a new outage starts from the base delay
        deadline = time.monotonic() + 10
        while sub.reconnects < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sub.wait_subscribed(5)
        assert delays == [0.1, 0.2, 0.4, 0.5, 0.5, 0.1]
        assert sub.reconnects == 2
    client.close()
    admin.close()


def test_silent_connection_is_detected_by_ping(private_server):
    server = private_server()
    client = redis.Redis(port=server.port, socket_timeout=5)
    admin = redis.Redis(port=server.port, socket_timeout=5)
    inbox, handler = _collector()
    with Subscriber(client, channels=["t:ping"], handler=handler, ping_interval=0.05) as sub:
        assert sub.wait_subscribed(5)
        admin.client_pause(600, all=True)  # the server answers nobody for a while
        deadline = time.monotonic() + 10
        while sub.disconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sub.disconnects >= 1
        assert "no reply" in sub.last_error
        assert sub.wait_subscribed(10)
        publish(admin, "t:ping", "back")
        assert _next(inbox).data == "back"
    client.close()
    admin.close()


def test_stop_unsubscribes_and_ends_thread(r):
    sub = Subscriber(r, channels=["t:stop"], handler=print).start()
    assert sub.wait_subscribed(5)
    assert sub.alive
    assert sub.stop()
    assert not sub.alive
    deadline = time.monotonic() + 5
    while r.pubsub_numsub("t:stop")[0][1] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert r.pubsub_numsub("t:stop") == [(b"t:stop", 0)]


def test_subscriber_needs_something_to_listen_to(r):
    with pytest.raises(ValueError, match="channel or pattern"):
        Subscriber(r, handler=print)
    with pytest.raises(TypeError, match="handler"):
        Subscriber(r, channels=["x"])


def test_channels_state_is_read_only_and_counts(private_server):
    server = private_server()
    writer = redis.Redis(port=server.port)
    reader = gate.install(connect(server.url), allow_writes=False)
    extra = writer.pubsub()
    extra.subscribe("app:1")
    _inbox, handler = _collector()
    channels = ["app:1", "app:2", b"app:\xff"]
    with Subscriber(writer, channels=channels, patterns=["app:*"], handler=handler) as sub:
        assert sub.wait_subscribed(5)
        extra.get_message(timeout=1)  # its subscribe confirmation
        state = channels_state(reader, "app:*")
        assert [(c.name, c.subscribers) for c in state.channels] == [
            ("app:1", 2),
            ("app:2", 1),
            ("app:\\xff", 1),
        ]
        assert state.channel_count == 3
        assert not state.truncated
        assert state.pattern_subscriptions == 1

        narrow = channels_state(reader, "app:2")
        assert [c.name for c in narrow.channels] == ["app:2"]

        cut = channels_state(reader, "*", limit=1, batch=1)
        assert cut.truncated
        assert cut.channel_count == 3
        assert len(cut.channels) == 1
    extra.close()
    writer.close()
    reader.close()


def _until(predicate, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_factory_is_called_on_every_reconnect_even_when_the_old_address_answers(
    private_server,
):
    """Issue 10: a failover moves the primary while the old address still answers.

    The factory says where the primary is. After the connection drops, the subscriber
    must ask it again (and follow it to the new server), not let redis-py quietly
    reconnect and resubscribe to the old one.
    """
    old, new = private_server(), private_server()
    # default clients: redis-py's retry is on, as in any application
    clients = [redis.Redis(port=old.port), redis.Redis(port=new.port)]
    calls = []

    def factory():
        calls.append(1)
        return clients[min(len(calls), 2) - 1]

    inbox, handler = _collector()
    with Subscriber(factory, channels=["t:failover"], handler=handler, backoff_base=0.01) as sub:
        assert sub.wait_subscribed(5)
        clients[0].client_kill_filter(_type="pubsub")  # the old primary still answers
        assert _until(lambda: len(calls) >= 2 and sub.subscribed)
        assert _until(lambda: publish(clients[1], "t:failover", "on the new primary") == 1)
        assert _next(inbox).data == "on the new primary"
        assert clients[0].pubsub_numsub("t:failover") == [(b"t:failover", 0)]
        assert sub.stats()["connects"] == 2
    for client in clients:
        client.close()
