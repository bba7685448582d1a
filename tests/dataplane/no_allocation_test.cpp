// DESIGN invariant 1: the packet path allocates nothing. This binary replaces the global
// operator new with one that counts calls while armed; the test arms it only around
// Worker::poll_once() and pushes every kind of traffic through: new and established UDP, TCP
// and ICMP flows both ways, ARP, pings, TTL expiry, malformed packets, neighbour resolution
// with queued packets, packets too big for their link (fragmented or refused), session expiry
// and port reuse.

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace {
std::atomic<bool> g_armed{false};
std::atomic<uint64_t> g_allocations{0};
}  // namespace

#if !defined(__SANITIZE_ADDRESS__)
// A replacement pair built on malloc/free; GCC cannot tell that from a mismatch.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void* operator new(std::size_t size) {
    if (g_armed.load(std::memory_order_relaxed)) g_allocations.fetch_add(1);
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t size) { return operator new(size); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
#endif

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace tcp = common::tcp;
namespace icmp = common::icmp;

class NoAllocation : public ::testing::Test {
protected:
    void SetUp() override {
#if defined(__SANITIZE_ADDRESS__)
        GTEST_SKIP() << "operator new belongs to AddressSanitizer in this build";
#endif
        h.settings().nat.timeouts.udp_s = 5;
        h.settings().outside.mtu = 1280;
        h.start();
    }
    // Polls with the counter armed; returns the allocations made.
    uint64_t poll_counting(int iterations) {
        g_allocations.store(0);
        g_armed.store(true);
        h.poll(iterations);
        g_armed.store(false);
        return g_allocations.load();
    }
    const Topology& t() { return h.topo(); }
    DataplaneHarness h;
};

TEST_F(NoAllocation, ThePacketPathAllocatesNothing) {
    // The counter works: an allocation while armed is seen.
    g_allocations.store(0);
    g_armed.store(true);
    ::operator delete(::operator new(16));  // an explicit call: the compiler may not elide it
    g_armed.store(false);
    ASSERT_EQ(g_allocations.load(), 1u);

    // Unresolved neighbours: packets queue, ARP requests go out.
    for (uint16_t i = 0; i < 3; ++i)
        h.inside().inject(PacketBuilder()
                              .ethernet(t().subscriber1_mac, h.inside().mac())
                              .ipv4(t().subscriber1, t().server1)
                              .udp(static_cast<uint16_t>(40000 + i), 53)
                              .payload("q")
                              .build());
    EXPECT_EQ(poll_counting(2), 0u);
    // Resolution: ARP from the gateway and the subscribers, queued packets leave.
    h.outside().inject(
        arp_reply(t().gateway_mac, t().gateway, h.outside().mac(), t().outside.address));
    h.inside().inject(arp_request(t().subscriber1_mac, t().subscriber1, t().inside.address));
    h.inside().inject(arp_request(t().subscriber2_mac, t().subscriber2, t().inside.address));
    EXPECT_EQ(poll_counting(2), 0u);
    h.outside().drain();
    h.inside().drain();

    // Many new flows of every protocol, and malformed and local traffic.
    for (uint16_t i = 0; i < 200; ++i) {
        h.inside().inject(PacketBuilder()
                              .ethernet(t().subscriber2_mac, h.inside().mac())
                              .ipv4(t().subscriber2, t().server1)
                              .udp(static_cast<uint16_t>(10000 + i), 53)
                              .build());
        h.inside().inject(PacketBuilder()
                              .ethernet(t().subscriber1_mac, h.inside().mac())
                              .ipv4(t().subscriber1, t().server2)
                              .tcp(static_cast<uint16_t>(20000 + i), 443, tcp::kSyn)
                              .build());
    }
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server1)
                          .icmp_echo(icmp::kEchoRequest, 9, 1)
                          .build());
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().inside.address)
                          .icmp_echo(icmp::kEchoRequest, 9, 1)
                          .build());
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server1, 1)
                          .udp(1234, 53)
                          .build());
    Frame bad = PacketBuilder()
                    .ethernet(t().subscriber1_mac, h.inside().mac())
                    .ipv4(t().subscriber1, t().server1)
                    .udp(1, 2)
                    .build();
    bad[common::eth::kHeaderLength + common::ipv4::kChecksum] ^= 1;
    h.inside().inject(bad);
    EXPECT_EQ(poll_counting(30), 0u);
    EXPECT_EQ(h.counter(Counter::sessions_created), 3u + 400u + 1u);

    // Replies through the established sessions (out2in), and an unsolicited packet.
    auto ext = h.worker().nat().find_mapping(common::ipv4::kProtoUdp, t().subscriber2.value, 10000);
    ASSERT_TRUE(ext.has_value());
    for (int i = 0; i < 50; ++i)
        h.outside().inject(PacketBuilder()
                               .ethernet(t().gateway_mac, h.outside().mac())
                               .ipv4(t().server1, common::Ipv4Address{ext->first})
                               .udp(53, ext->second)
                               .build());
    EXPECT_EQ(poll_counting(5), 0u);
    EXPECT_EQ(h.counter(Counter::out2in_translated), 50u);

    // Packets too big for the outside link (RFC 4787 REQ-13/13a): cut into fragments (mbufs
    // from the pool), or refused with ICMP fragmentation needed.
    for (const uint16_t flags : {uint16_t{0}, common::ipv4::kFlagDontFragment})
        h.inside().inject(PacketBuilder()
                              .ethernet(t().subscriber1_mac, h.inside().mac())
                              .ipv4(t().subscriber1, t().server1)
                              .ipv4_fragment(flags)
                              .udp(30000, 53)
                              .payload(std::vector<uint8_t>(1372, 0x5a))
                              .build());
    EXPECT_EQ(poll_counting(2), 0u);
    EXPECT_EQ(h.counter(Counter::fragments_created), 2u);
    EXPECT_EQ(h.counter(Counter::icmp_frag_needed_sent), 1u);

    // Expiry of the UDP sessions, then new flows reusing their ports.
    h.clock().advance_ms(6'000);
    EXPECT_EQ(poll_counting(10), 0u);
    EXPECT_GE(h.counter(Counter::sessions_expired), 200u);
    h.inside().drain();
    h.outside().drain();
}

}  // namespace
}  // namespace cgn::test
