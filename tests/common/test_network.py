from xsearch.common.network import is_loopback


def test_only_loopback_addresses_are_loopback():
    assert [is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost")] == [True] * 4
    assert [is_loopback(h) for h in ("0.0.0.0", "10.0.0.7", "::", "example.org")] == [False] * 4
