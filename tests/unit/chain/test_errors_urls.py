"""How a chain error's text shows a URL (``chain.errors.shown_url``, ``without_urls``): its origin, never its path,
query or user information, where a hosted RPC URL carries its key."""

from __future__ import annotations

import pytest

from chain.errors import ChainIdMismatch, shown_url, without_urls

pytestmark = pytest.mark.unit


def test_a_url_is_shown_by_its_origin_and_whether_it_had_more() -> None:
    assert shown_url("https://eth-mainnet.g.alchemy.com/v2/KEY") == "https://eth-mainnet.g.alchemy.com/…"
    assert shown_url("https://user:pass@rpc.example:8443") == "https://rpc.example:8443/…"
    assert shown_url("http://127.0.0.1:8545") == "http://127.0.0.1:8545"
    assert shown_url("http://127.0.0.1:8545/") == "http://127.0.0.1:8545"
    assert shown_url("http://[::1]:8545/key") == "http://[::1]:8545/…"
    assert shown_url("http://host:abc/key") == "<a URL that does not parse>"


def test_every_url_in_a_text_is_shown_so() -> None:
    aiohttp_said = (
        "ClientResponseError(RequestInfo(url=URL('http://127.0.0.1:33877/v2/sk_live_KEY'), method='POST'), "
        "status=429); refused: wss://node.example/ws/KEY2"
    )
    shown = without_urls(aiohttp_said)
    assert "KEY" not in shown, shown
    assert "URL('http://127.0.0.1:33877/…')" in shown
    assert "wss://node.example/…" in shown
    assert without_urls("no URL here: eth_call reverted") == "no URL here: eth_call reverted"
    mismatch = ChainIdMismatch("https://rpc.example/v3/KEY", 1, 5)
    assert "KEY" not in str(mismatch)
    assert mismatch.url == "https://rpc.example/v3/KEY"
