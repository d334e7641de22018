import redis


def test_private_server_is_ours_and_clean(r, redis_server):
    # The suite's own server: loopback, no persistence, and an empty database.
    assert r.dbsize() == 0
    assert r.config_get("save")["save"] == ""
    assert r.config_get("appendonly")["appendonly"] == "no"
    assert redis_server.port == r.connection_pool.connection_kwargs["port"]
    r.set("left:behind", 1)


def test_each_test_gets_a_clean_database(r):
    assert r.get("left:behind") is None


def test_private_server_stops(private_server):
    server = private_server()
    client = redis.Redis(port=server.port)
    assert client.ping()
    server.stop()
    try:
        client.ping()
    except redis.ConnectionError:
        pass
    else:
        raise AssertionError("server still answers after stop()")
    finally:
        client.close()
