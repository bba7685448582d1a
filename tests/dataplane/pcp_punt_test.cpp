// The worker's side of the PCP server (RFC 6887 §7, RFC 6886): UDP to the inside address's
// port 5351 from the inside goes to the control thread's ring, the control thread's answers go
// out of the inside port, requests from the outside are dropped; every frame accounted for.

#include <gtest/gtest.h>
#include <rte_ring.h>

#include <cstring>

#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;

// The two rings, as cgnd makes them for a worker.
struct PcpRings {
    explicit PcpRings(unsigned size = 8) {
        static unsigned serial = 0;
        const std::string id = std::to_string(serial++);
        requests = rte_ring_create(("pcpq" + id).c_str(), size, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
        answers = rte_ring_create(("pcpa" + id).c_str(), size, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    }
    ~PcpRings() {
        void* m = nullptr;
        while (rte_ring_dequeue(requests, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        while (rte_ring_dequeue(answers, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        rte_ring_free(requests);
        rte_ring_free(answers);
    }
    rte_ring* requests;
    rte_ring* answers;
};

// Starts `h` with `rings` as its worker's PCP rings, counters at zero.
void start_with(DataplaneHarness& h, PcpRings& rings) {
    h.settings().pcp_requests = rings.requests;
    h.settings().pcp_answers = rings.answers;
    h.start();
    h.reset_counters();
}

Frame pcp_request(const DataplaneHarness& h, common::Ipv4Address dst, uint16_t port = 5351) {
    const Topology& t = h.topo();
    return PacketBuilder()
        .ethernet(t.subscriber1_mac, const_cast<DataplaneHarness&>(h).inside().mac())
        .ipv4(t.subscriber1, dst, 64, 7)
        .udp(5350, port)
        .payload(std::string("\x02\x00\x00\x00", 4) + std::string(20, '\0'))
        .build();
}

Frame mbuf_bytes(rte_mbuf* m) {
    const auto* p = rte_pktmbuf_mtod(m, const uint8_t*);
    return Frame(p, p + rte_pktmbuf_pkt_len(m));
}

TEST(PcpPunt, ARequestToTheInsideAddressGoesToTheControlThreadAsItCame) {
    PcpRings rings;
    DataplaneHarness h;
    start_with(h, rings);
    const Frame request = pcp_request(h, h.topo().inside.address);
    h.inside().inject(request);
    h.poll();
    EXPECT_TRUE(h.inside().drain().empty()) << "no answer from the worker itself";
    ASSERT_EQ(rte_ring_count(rings.requests), 1u);
    void* m = nullptr;
    ASSERT_EQ(rte_ring_dequeue(rings.requests, &m), 0);
    EXPECT_EQ(mbuf_bytes(static_cast<rte_mbuf*>(m)), request);
    rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    EXPECT_EQ(h.counter(Counter::pcp_requests_punted), 1u);
    EXPECT_EQ(h.counter(Counter::drop_for_us), 0u);
    const auto b = h.frame_balance();
    EXPECT_TRUE(b.balanced()) << b.describe();
}

TEST(PcpPunt, AFullQueueDropsAndCounts) {
    PcpRings rings(4);  // holds 3
    DataplaneHarness h;
    start_with(h, rings);
    for (int i = 0; i < 5; ++i) h.inside().inject(pcp_request(h, h.topo().inside.address));
    h.poll();
    EXPECT_EQ(h.counter(Counter::pcp_requests_punted), 3u);
    EXPECT_EQ(h.counter(Counter::drop_pcp_punt_full), 2u);
    const auto b = h.frame_balance();
    EXPECT_TRUE(b.balanced()) << b.describe();
}

// RFC 6887 §18 in the worker: each subscriber's requests at its own rate, before the ring all
// of the worker's subscribers share. Without the limiter all 10 of sub1's requests take the
// ring (punted 12, rate_limited 0) and, with a smaller ring, sub2's would be the ones lost.
TEST(PcpPunt, OneSubscribersFloodIsCutAtItsRateBeforeTheRing) {
    PcpRings rings(32);
    DataplaneHarness h;
    h.settings().pcp_request_rate = 10;
    h.settings().pcp_request_burst = 3;
    start_with(h, rings);
    const Topology& t = h.topo();
    auto from = [&](common::Ipv4Address src, common::MacAddress mac) {
        return PacketBuilder()
            .ethernet(mac, h.inside().mac())
            .ipv4(src, t.inside.address, 64, 7)
            .udp(5350, 5351)
            .payload(std::string("\x02\x00\x00\x00", 4) + std::string(20, '\0'))
            .build();
    };
    // One burst, mixed: sub1 floods, sub2 asks twice in between.
    for (int i = 0; i < 10; ++i) {
        h.inside().inject(from(t.subscriber1, t.subscriber1_mac));
        if (i == 4 || i == 8) h.inside().inject(from(t.subscriber2, t.subscriber2_mac));
    }
    h.poll();
    EXPECT_EQ(h.counter(Counter::pcp_requests_punted), 5u) << "sub1's burst of 3, sub2's 2";
    EXPECT_EQ(h.counter(Counter::drop_pcp_rate_limited), 7u);
    uint32_t from_sub2 = 0;
    void* m = nullptr;
    while (rte_ring_dequeue(rings.requests, &m) == 0) {
        const Frame f = mbuf_bytes(static_cast<rte_mbuf*>(m));
        from_sub2 += f == from(t.subscriber2, t.subscriber2_mac);
        rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    }
    EXPECT_EQ(from_sub2, 2u);
    // 10 a second: one more for sub1 after 100 ms, not two.
    h.clock().advance_ms(100);
    h.inside().inject(from(t.subscriber1, t.subscriber1_mac));
    h.inside().inject(from(t.subscriber1, t.subscriber1_mac));
    h.poll();
    EXPECT_EQ(h.counter(Counter::pcp_requests_punted), 6u);
    EXPECT_EQ(h.counter(Counter::drop_pcp_rate_limited), 8u);
    const auto b = h.frame_balance();
    EXPECT_TRUE(b.balanced()) << b.describe();
}

TEST(PcpPunt, RequestsFromTheOutsideAreDroppedAndCounted) {
    PcpRings rings;
    DataplaneHarness h;
    start_with(h, rings);
    h.resolve_neighbors();
    h.reset_counters();
    const Topology& t = h.topo();
    for (auto dst : {t.outside.address, t.inside.address})
        h.outside().inject(PacketBuilder()
                               .ethernet(t.gateway_mac, h.outside().mac())
                               .ipv4(t.server1, dst, 60, 3)
                               .udp(5350, 5351)
                               .payload("pcp?")
                               .build());
    h.poll();
    EXPECT_EQ(h.counter(Counter::drop_pcp_from_outside), 2u);
    EXPECT_EQ(rte_ring_count(rings.requests), 0u);
    EXPECT_TRUE(h.outside().drain().empty());
}

TEST(PcpPunt, WithoutAServerAndOnOtherPortsNothingChanges) {
    DataplaneHarness h;  // no rings
    h.start();
    h.reset_counters();
    h.inside().inject(pcp_request(h, h.topo().inside.address));
    h.poll();
    EXPECT_EQ(h.counter(Counter::drop_for_us), 1u);
    PcpRings rings;
    DataplaneHarness with;
    start_with(with, rings);
    with.inside().inject(pcp_request(with, with.topo().inside.address, 5352));
    with.poll();
    EXPECT_EQ(with.counter(Counter::drop_for_us), 1u);
    EXPECT_EQ(rte_ring_count(rings.requests), 0u);
}

TEST(PcpPunt, TheControlThreadsAnswersLeaveOnTheInside) {
    PcpRings rings;
    DataplaneHarness h;
    start_with(h, rings);
    const Topology& t = h.topo();
    const Frame answer = PacketBuilder()
                             .ethernet(h.inside().mac(), t.subscriber1_mac)
                             .ipv4(t.inside.address, t.subscriber1, 64, 9)
                             .udp(5351, 5350)
                             .payload(std::string(24, '\x01'))
                             .build();
    rte_mbuf* m = rte_pktmbuf_alloc(h.pool());
    ASSERT_NE(m, nullptr);
    std::memcpy(rte_pktmbuf_append(m, static_cast<uint16_t>(answer.size())), answer.data(), answer.size());
    ASSERT_EQ(rte_ring_enqueue(rings.answers, m), 0);
    h.poll();
    const auto out = h.inside().drain();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], answer);
    EXPECT_EQ(h.counter(Counter::pcp_answers_sent), 1u);
    EXPECT_EQ(h.counter(Counter::tx_inside), 1u);
    const auto b = h.frame_balance();
    EXPECT_TRUE(b.balanced()) << b.describe();
}

}  // namespace
}  // namespace cgn::test
