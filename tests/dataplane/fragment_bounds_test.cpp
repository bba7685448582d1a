// Held fragments against the mbuf pool and the bookkeeping of virtual reassembly (RFC 4787
// REQ-14a: a fragment flood must not hurt other traffic):
//   - a worker holds at most its share of the pool (fragment_hold_budget); beyond it a fragment
//     to hold is dropped and counted, and RX goes on;
//   - a datagram freed early leaves no place behind that blocks new datagrams;
//   - a duplicate or overlapping fragment adds no bytes, so it cannot complete a datagram
//     before its missing fragments came.

#include <gtest/gtest.h>

#include <rte_mempool.h>

#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;

class FragmentBounds : public ::testing::Test {
protected:
    void start() {
        h.start();
        h.resolve_neighbors();
        h.reset_counters();
    }
    const Topology& t() { return h.topo(); }
    // A 3000-byte UDP datagram from subscriber 1, whole (to be cut into fragments).
    Frame datagram(uint16_t sport) {
        return PacketBuilder()
            .ethernet(t().subscriber1_mac, h.inside().mac())
            .ipv4(t().subscriber1, t().server1)
            .udp(sport, 9)
            .payload(std::string(2992, 'f'))
            .build();
    }
    DataplaneHarness h;
};

TEST_F(FragmentBounds, HeldFragmentsStayWithinTheWorkersShareOfThePool) {
    h.settings().fragment_hold_budget = 16;
    start();
    const unsigned free_before = rte_mempool_avail_count(h.pool());
    // 40 datagrams whose first fragment never comes: each later fragment is held until the
    // budget is reached.
    for (uint16_t i = 0; i < 40; ++i) {
        h.inside().inject(fragment(datagram(static_cast<uint16_t>(5000 + i)), 1480,
                                   static_cast<uint16_t>(100 + i))[1]);
        if (i % 16 == 15) h.poll();
    }
    h.poll(2);
    EXPECT_EQ(h.counter(Counter::fragments_held), 16u);
    EXPECT_EQ(h.counter(Counter::drop_fragment_hold_budget), 24u);
    EXPECT_EQ(h.worker().fragments().held(), 16u);
    EXPECT_EQ(free_before - rte_mempool_avail_count(h.pool()), 16u);
    // Other traffic goes on, and a datagram whose first fragment comes still gets through.
    const auto frags = fragment(datagram(6000), 1480, 200);
    for (const auto& f : frags) h.inside().inject(f);
    h.poll(2);
    EXPECT_EQ(h.outside().drain().size(), frags.size());
    // At the timeout the held ones go, counted, and the budget is free again.
    h.clock().advance_ms(h.settings().fragment_timeout_ms + 1);
    h.poll(2);
    EXPECT_EQ(h.counter(Counter::drop_fragment_timeout), 16u);
    EXPECT_EQ(h.worker().fragments().held(), 0u);
    EXPECT_EQ(rte_mempool_avail_count(h.pool()), free_before);
}

// Four datagrams fill a four-entry table; the second completes and is freed while the first,
// older, still waits. A fifth datagram must find the free entry (the creation-order queue used
// to count the freed one's place until everything before it had expired).
TEST_F(FragmentBounds, AnEntryFreedEarlyIsReusedAtOnce) {
    h.settings().fragment_capacity = 4;
    start();
    std::vector<std::vector<Frame>> d;
    for (uint16_t i = 0; i < 5; ++i)
        d.push_back(fragment(datagram(static_cast<uint16_t>(7000 + i)), 1480,
                             static_cast<uint16_t>(300 + i)));
    for (unsigned i = 0; i < 4; ++i) h.inside().inject(d[i][1]);  // held: four entries
    h.poll(2);
    EXPECT_EQ(h.worker().fragments().size(), 4u);
    for (const auto& f : {d[1][0], d[1][2]}) h.inside().inject(f);  // datagram 1 completes
    h.poll(2);
    EXPECT_EQ(h.outside().drain().size(), 3u);
    EXPECT_EQ(h.worker().fragments().size(), 3u);
    for (const auto& f : d[4]) h.inside().inject(f);
    h.poll(2);
    EXPECT_EQ(h.outside().drain().size(), d[4].size());
    EXPECT_EQ(h.counter(Counter::drop_fragment_table_full), 0u);
}

// First fragment, last fragment, the first again (a duplicate), then the middle one. Counted by
// sum, the duplicate made the datagram look complete and freed its entry: the middle fragment
// then found no ports, was held, and timed out.
TEST_F(FragmentBounds, DuplicateFragmentsDoNotCompleteADatagramEarly) {
    start();
    const auto f = fragment(datagram(8000), 1480, 400);
    ASSERT_EQ(f.size(), 3u);
    for (const auto& frame : {f[0], f[2], f[0], f[1]}) h.inside().inject(frame);
    h.poll(2);
    EXPECT_EQ(h.outside().drain().size(), 4u);
    EXPECT_EQ(h.counter(Counter::fragments_held), 0u);
    EXPECT_EQ(h.worker().fragments().size(), 0u);  // complete, freed
    // Five fragments (offsets 0, 744, 1488, 2232, 2976; 3000 bytes): with the second twice,
    // the bytes add up to 3000 while the third is still missing.
    const auto g = fragment(datagram(8001), 744, 401);
    ASSERT_EQ(g.size(), 5u);
    for (const auto& frame : {g[0], g[4], g[1], g[1], g[3]}) h.inside().inject(frame);
    h.poll(2);
    EXPECT_EQ(h.worker().fragments().size(), 1u) << "complete before fragment 2 came";
    h.inside().inject(g[2]);
    h.poll(2);
    EXPECT_EQ(h.outside().drain().size(), 6u);
    EXPECT_EQ(h.worker().fragments().size(), 0u);
    h.clock().advance_ms(h.settings().fragment_timeout_ms + 1);
    h.poll(2);
    EXPECT_EQ(h.counter(Counter::drop_fragment_timeout), 0u);
}

}  // namespace
}  // namespace cgn::test
