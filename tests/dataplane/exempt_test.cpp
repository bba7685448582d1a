// Exempt destinations (RFC 6888 REQ-6): routed without translation, both ways; everything else
// is still translated.

#include <gtest/gtest.h>

#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;

TEST(Exempt, TrafficToAndFromAnExemptPrefixIsRoutedAsItIs) {
    DataplaneHarness h;
    h.settings().exempt_destinations = {*common::Ipv4Prefix::parse("203.0.113.128/25")};
    h.start();
    h.resolve_neighbors();
    h.reset_counters();
    const Topology& t = h.topo();
    const auto dns = *common::Ipv4Address::parse("203.0.113.200");
    h.inside().inject(PacketBuilder()
                          .ethernet(t.subscriber1_mac, h.inside().mac())
                          .ipv4(t.subscriber1, dns, 64, 1)
                          .udp(40000, 53)
                          .payload("query")
                          .build());
    h.poll();
    auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], PacketBuilder()
                          .ethernet(h.outside().mac(), t.gateway_mac)
                          .ipv4(t.subscriber1, dns, 63, 1)
                          .udp(40000, 53)
                          .payload("query")
                          .build());
    h.outside().inject(PacketBuilder()
                           .ethernet(t.gateway_mac, h.outside().mac())
                           .ipv4(dns, t.subscriber1, 60, 2)
                           .udp(53, 40000)
                           .payload("answer")
                           .build());
    h.poll();
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], PacketBuilder()
                         .ethernet(h.inside().mac(), t.subscriber1_mac)
                         .ipv4(dns, t.subscriber1, 59, 2)
                         .udp(53, 40000)
                         .payload("answer")
                         .build());
    EXPECT_EQ(h.counter(Counter::forwarded_untranslated), 2u);
    EXPECT_EQ(h.counter(Counter::sessions_created), 0u);
    // Not exempt: translated as ever; and an outside host that is not exempt cannot reach a
    // subscriber's own address.
    h.inside().inject(PacketBuilder()
                          .ethernet(t.subscriber1_mac, h.inside().mac())
                          .ipv4(t.subscriber1, t.server1)
                          .udp(40000, 53)
                          .build());
    h.outside().inject(PacketBuilder()
                           .ethernet(t.gateway_mac, h.outside().mac())
                           .ipv4(t.server1, t.subscriber1)
                           .udp(53, 40000)
                           .build());
    h.poll();
    EXPECT_EQ(h.counter(Counter::in2out_translated), 1u);
    EXPECT_EQ(h.counter(Counter::drop_ipv4_martian), 1u);
    EXPECT_TRUE(h.inside().drain().empty());
}

}  // namespace
}  // namespace cgn::test
