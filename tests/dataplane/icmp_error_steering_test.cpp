// An ICMP error from the inside belongs to the worker of the subscriber it is about, which is
// the destination of the packet it quotes: it may come from a router between cgnd and the
// subscriber, whose own address hashes to any worker (RFC 5508 §4.2: the error is translated
// with the session of the quoted packet).

#include <gtest/gtest.h>

#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "dataplane/nat/steering.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace icmp = common::icmp;

TEST(IcmpErrorSteering, ErrorFromAnInsideRouterReachesTheSubscribersWorker) {
    DataplaneHarness h(2);
    h.start();
    h.resolve_neighbors();
    const Topology& t = h.topo();
    const dp::Steering steering(2, &h.blocks());
    const unsigned owner = steering.subscriber_owner(t.subscriber1.value);
    // A router on the inside link whose address hashes to the other worker.
    common::Ipv4Address router{0};
    for (uint32_t a = t.inside.address.value + 1; a < t.inside.address.value + 256; ++a)
        if (steering.subscriber_owner(a) != owner && a != t.subscriber1.value &&
            a != t.subscriber2.value) {
            router = common::Ipv4Address{a};
            break;
        }
    ASSERT_NE(router.value, 0u);

    h.inside().inject(PacketBuilder()
                          .ethernet(t.subscriber1_mac, h.inside().mac())
                          .ipv4(t.subscriber1, t.server1, 64, 5)
                          .udp(40000, 9)
                          .payload("data")
                          .build(),
                      static_cast<uint16_t>(owner));
    h.poll(3);
    ASSERT_EQ(h.outside().drain().size(), 1u);
    const auto ext = *h.find_mapping(common::ipv4::kProtoUdp, t.subscriber1.value, 40000);
    const common::Ipv4Address ext_addr{ext.first};
    h.reset_counters();

    // The server's reply, as the router would have forwarded it to the subscriber, quoted in
    // the router's host unreachable; it arrives on the router's worker's queue.
    auto quote = [&](common::Ipv4Address dst, uint16_t dport) {
        return PacketBuilder().ipv4(t.server1, dst, 62, 9).udp(9, dport).payload("reply").build();
    };
    h.inside().inject(PacketBuilder()
                          .ethernet(common::MacAddress{{2, 0, 0, 0, 0, 0x99}}, h.inside().mac())
                          .ipv4(router, t.server1, 64, 33)
                          .icmp(icmp::kDestUnreachable, icmp::kCodeHostUnreachable, 0)
                          .payload(quote(t.subscriber1, 40000))
                          .build(),
                      static_cast<uint16_t>(1 - owner));
    h.poll(3);
    const auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 1u) << "drop_icmp_error_no_session "
                              << h.counter(Counter::drop_icmp_error_no_session);
    EXPECT_EQ(out[0], PacketBuilder()
                          .ethernet(h.outside().mac(), t.gateway_mac)
                          .ipv4(ext_addr, t.server1, 63, 33)
                          .icmp(icmp::kDestUnreachable, icmp::kCodeHostUnreachable, 0)
                          .payload(quote(ext_addr, ext.second))
                          .build());
    EXPECT_EQ(h.counter(Counter::icmp_errors_translated, owner), 1u);
    EXPECT_EQ(h.counter(Counter::drop_icmp_error_no_session), 0u);
}

}  // namespace
}  // namespace cgn::test
