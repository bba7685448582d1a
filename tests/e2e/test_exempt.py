"""Exempt destinations (RFC 6888 REQ-6): a subscriber reaches an exempt host with its own
address, and the host's answers come back untranslated; other destinations are translated."""

import cgn_topology as ct
from conftest import assert_pool, learn

EXT1 = ct.HOSTS["ext1"].ip
EXT2 = ct.HOSTS["ext2"].ip


def test_exempt_destination_sees_the_subscriber_address(net):
    net.start_cgnd(extra=["--exempt-destination", f"{EXT2}/32"])
    # ext2 routes the subscribers' prefix back through cgnd, as an ISP's own server would.
    net.run("ext2", ["ip", "route", "add", "100.64.0.0/10", "via", ct.CGN_OUTSIDE])
    try:
        a = net.agent("sub1", 43030)
        e2 = net.agent("ext2", 7050)
        seen = learn(a, e2, EXT2, 7050)
        assert tuple(seen) == ("100.64.0.11", 43030), f"ext2 (exempt) saw {seen}"
        back = learn(e2, a, "100.64.0.11", 43030, payload="answer")
        assert tuple(back) == (EXT2, 7050), f"sub1 got ext2's answer from {back}"
        e1 = net.agent("ext1", 7051)
        assert_pool(learn(a, e1, EXT1, 7051)[0], "the source ext1 (not exempt) saw")
    finally:
        net.run("ext2", ["ip", "route", "del", "100.64.0.0/10", "via", ct.CGN_OUTSIDE])
