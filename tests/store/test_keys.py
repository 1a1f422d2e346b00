"""Store keys: namespaced; hashed whenever memcached could not take them raw."""

import pytest

from wsgi_gateway.store.keys import MAX_KEY_BYTES, digest_key, store_key


@pytest.mark.parametrize("raw, hashed", [
    pytest.param("session:abc", False, id="plain"),
    pytest.param("a" * (MAX_KEY_BYTES - 3), False, id="exactly 250 bytes with namespace"),
    pytest.param("a" * (MAX_KEY_BYTES - 2), True, id="251 bytes"),
    pytest.param("with space", True, id="space"),
    pytest.param("tab\there", True, id="tab"),
    pytest.param("del\x7f", True, id="DEL"),
    pytest.param("é", True, id="non-ascii"),
    pytest.param("", False, id="empty (a bare namespace is a valid key)"),
])
def test_store_key(raw, hashed):
    key = store_key("gw", raw)
    assert len(key.encode()) <= MAX_KEY_BYTES
    assert all(0x21 <= b <= 0x7e for b in key.encode())
    assert key.startswith("gw:")
    assert (key == f"gw:{raw}") is (not hashed)


def test_hashed_keys_differ_for_different_input():
    assert store_key("gw", "a b") != store_key("gw", "a  b")


def test_digest_key_never_contains_the_secret():
    token = "eyJhbGciOiJSUzI1NiJ9.payload.sig"
    key = digest_key("jwt", token)
    assert token not in key and key.startswith("jwt:") and len(key) == 4 + 64
