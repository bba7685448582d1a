// Live reconfiguration through the control channel, with one and two workers: static
// mappings added and removed, timeouts, filtering and the pool changed while the workers run.
// The Controller's waits poll the workers from this thread, so every step is deterministic.

#include <gtest/gtest.h>

#include <set>

#include "common/byte_order.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "dataplane/nat/steering.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace tcp = common::tcp;
namespace ipv4 = common::ipv4;

common::Ipv4Address ip(const char* text) { return *common::Ipv4Address::parse(text); }

class LiveConfig : public ::testing::TestWithParam<unsigned> {
protected:
    LiveConfig() : h(GetParam()) {}

    void start(common::FilteringMode filtering = common::FilteringMode::endpoint_independent) {
        h.settings().nat.filtering = filtering;
        h.start(true);
        h.resolve_neighbors();
        h.reset_counters();
    }
    const Topology& t() { return h.topo(); }
    common::StaticMapping static_mapping(const char* text) {
        return *common::StaticMapping::parse(text);
    }
    Frame outside_tcp(common::Ipv4Address src, uint16_t sport, common::Ipv4Address dst,
                      uint16_t dport, uint8_t flags) {
        return PacketBuilder()
            .ethernet(t().gateway_mac, h.outside().mac())
            .ipv4(src, dst, 64, 77)
            .tcp(sport, dport, flags, 1000)
            .build();
    }
    Frame inside_udp(common::Ipv4Address src, uint16_t sport, common::Ipv4Address dst,
                     uint16_t dport) {
        return PacketBuilder()
            .ethernet(src == t().subscriber1 ? t().subscriber1_mac : t().subscriber2_mac,
                      h.inside().mac())
            .ipv4(src, dst)
            .udp(sport, dport)
            .payload("x")
            .build();
    }
    Frame outside_udp(common::Ipv4Address src, uint16_t sport, common::Ipv4Address dst,
                      uint16_t dport) {
        return PacketBuilder()
            .ethernet(t().gateway_mac, h.outside().mac())
            .ipv4(src, dst)
            .udp(sport, dport)
            .payload("y")
            .build();
    }
    // Source endpoint of the only frame on the outside port.
    std::pair<uint32_t, uint16_t> sent_from() {
        auto out = h.outside().drain();
        EXPECT_EQ(out.size(), 1u);
        if (out.size() != 1) return {};
        const uint8_t* ip4 = out[0].data() + common::eth::kHeaderLength;
        return {common::load_be32(ip4 + ipv4::kSrc),
                common::load_be16(ip4 + ipv4::kMinHeaderLength)};
    }
    size_t inside_arrivals() { return h.inside().drain().size(); }

    DataplaneHarness h;
};

TEST_P(LiveConfig, StaticMappingReachesSubscriberWhateverTheQueueAndFiltering) {
    start(common::FilteringMode::address_and_port_dependent);
    h.controller().add_static(static_mapping("tcp 100.64.0.11:8080 198.51.100.1:80"));
    for (uint16_t q = 0; q < h.workers(); ++q) {
        h.outside().inject(outside_tcp(t().server1, static_cast<uint16_t>(40000 + q),
                                       ip("198.51.100.1"), 80, tcp::kSyn),
                           q);
        h.poll(2);
        auto in = h.inside().drain();
        ASSERT_EQ(in.size(), 1u) << "queue " << q;
        EXPECT_EQ(in[0], PacketBuilder()
                             .ethernet(h.inside().mac(), t().subscriber1_mac)
                             .ipv4(t().server1, t().subscriber1, 63, 77)
                             .tcp(static_cast<uint16_t>(40000 + q), 8080, tcp::kSyn, 1000)
                             .build());
    }
    // The subscriber answers from its mapped endpoint: the static external one is the source.
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server1)
                          .tcp(8080, 40000, tcp::kSyn | tcp::kAck_)
                          .build());
    h.poll(2);
    EXPECT_EQ(sent_from(), std::make_pair(ip("198.51.100.1").value, uint16_t{80}));
    EXPECT_EQ(h.counter(Counter::drop_out2in_filtered), 0u);
}

TEST_P(LiveConfig, StaticPortInsideTheRangeIsReservedOnItsBlockOwner) {
    start();
    // An external port whose block belongs to the worker that does not own subscriber 1
    // (with one worker: any port).
    const dp::Steering steering(h.workers(), &h.blocks());
    const unsigned sub_owner = steering.subscriber_owner(t().subscriber1.value);
    uint16_t port = 1024;
    while (h.workers() > 1 && steering.external_owner(1, port) == sub_owner) port += 512;
    const std::string text = "udp 100.64.0.11:5000 198.51.100.1:" + std::to_string(port);
    h.controller().add_static(static_mapping(text.c_str()));
    h.outside().inject(outside_udp(t().server2, 53, ip("198.51.100.1"), port));
    h.poll(2);
    EXPECT_EQ(inside_arrivals(), 1u);
    // Taking the same external endpoint again, or one a dynamic mapping holds, is refused.
    EXPECT_THROW(h.controller().add_static(static_mapping(
                     ("udp 100.64.0.12:5000 198.51.100.1:" + std::to_string(port)).c_str())),
                 common::ConfigError);
    h.inside().inject(inside_udp(t().subscriber2, 7000, t().server1, 53));
    h.poll(2);
    const auto dynamic = sent_from();
    const std::string taken = "udp 100.64.0.12:7001 " +
                              common::Ipv4Address{dynamic.first}.to_string() + ":" +
                              std::to_string(dynamic.second);
    try {
        h.controller().add_static(static_mapping(taken.c_str()));
        FAIL() << "a port in dynamic use was given to a static mapping";
    } catch (const common::ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("in use by a dynamic mapping"), std::string::npos)
            << e.what();
    }
}

TEST_P(LiveConfig, RemovedStaticMappingStopsTranslatingAndFreesItsPort) {
    start();
    h.controller().add_static(static_mapping("udp 100.64.0.11:5000 198.51.100.2:2000"));
    h.outside().inject(outside_udp(t().server1, 53, ip("198.51.100.2"), 2000));
    h.poll(2);
    EXPECT_EQ(inside_arrivals(), 1u);
    EXPECT_EQ(h.counter(Counter::sessions_created), 1u);
    h.controller().remove_static(17, t().subscriber1, 5000);
    uint32_t sessions = 0;
    for (unsigned w = 0; w < h.workers(); ++w) sessions += h.worker(w).nat().session_count();
    EXPECT_EQ(sessions, 0u) << "the static mapping's sessions outlived it";
    h.outside().inject(outside_udp(t().server1, 53, ip("198.51.100.2"), 2000));
    h.poll(2);
    EXPECT_EQ(inside_arrivals(), 0u);
    EXPECT_EQ(h.counter(Counter::drop_out2in_no_mapping), 1u);
    // The port is free again: another static mapping may take it.
    h.controller().add_static(static_mapping("udp 100.64.0.12:5000 198.51.100.2:2000"));
    EXPECT_THROW(h.controller().remove_static(17, t().subscriber1, 5000), common::ConfigError);
}

TEST_P(LiveConfig, StaticMappingReplacesTheEndpointsDynamicMapping) {
    start();
    h.inside().inject(inside_udp(t().subscriber1, 5000, t().server1, 53));
    h.poll(2);
    const auto dynamic = sent_from();
    h.controller().add_static(static_mapping("udp 100.64.0.11:5000 198.51.100.3:3000"));
    h.inside().inject(inside_udp(t().subscriber1, 5000, t().server1, 53));
    h.poll(2);
    EXPECT_EQ(sent_from(), std::make_pair(ip("198.51.100.3").value, uint16_t{3000}));
    // The old external endpoint leads nowhere now.
    h.outside().inject(
        outside_udp(t().server1, 53, common::Ipv4Address{dynamic.first}, dynamic.second));
    h.poll(2);
    EXPECT_EQ(inside_arrivals(), 0u);
}

TEST_P(LiveConfig, TimeoutChangeAppliesToExistingSessions) {
    start();
    h.inside().inject(inside_udp(t().subscriber1, 5000, t().server1, 53));
    h.poll(2);
    h.outside().drain();
    h.controller().set_timeout("udp", 10);
    h.clock().advance_ms(10'000);
    h.poll(2);
    EXPECT_EQ(h.counter(Counter::sessions_expired), 1u);
    EXPECT_THROW(h.controller().set_timeout("udp", 0), common::ConfigError);
    EXPECT_THROW(h.controller().set_timeout("sctp", 10), common::ConfigError);
}

TEST_P(LiveConfig, FilteringChangesWhileMappingsExist) {
    start();
    h.inside().inject(inside_udp(t().subscriber1, 5000, t().server1, 53));
    h.poll(2);
    const auto ext = sent_from();
    const common::Ipv4Address ext_addr{ext.first};
    h.controller().set_filtering(common::FilteringMode::address_and_port_dependent);
    h.outside().inject(outside_udp(t().server2, 53, ext_addr, ext.second));
    h.poll(2);
    EXPECT_EQ(inside_arrivals(), 0u);
    EXPECT_EQ(h.counter(Counter::drop_out2in_filtered), 1u);
    // Address-dependent: the session with server1 (created before the switch) lets server1's
    // other ports in, not server2.
    h.controller().set_filtering(common::FilteringMode::address_dependent);
    h.outside().inject(outside_udp(t().server1, 9999, ext_addr, ext.second));
    h.outside().inject(outside_udp(t().server2, 53, ext_addr, ext.second));
    h.poll(2);
    EXPECT_EQ(inside_arrivals(), 1u);
    h.controller().set_filtering(common::FilteringMode::endpoint_independent);
    h.outside().inject(outside_udp(t().server2, 53, ext_addr, ext.second));
    h.poll(2);
    EXPECT_EQ(inside_arrivals(), 1u);
}

TEST_P(LiveConfig, StricterFilteringAlsoAppliesToSessionsLetInBefore) {
    start();
    h.inside().inject(inside_udp(t().subscriber1, 5000, t().server1, 53));
    h.poll(2);
    const auto ext = sent_from();
    const common::Ipv4Address ext_addr{ext.first};
    // Endpoint-independent: server2 gets in and its packets open a session.
    h.outside().inject(outside_udp(t().server2, 7200, ext_addr, ext.second));
    h.poll(2);
    EXPECT_EQ(inside_arrivals(), 1u);
    EXPECT_EQ(h.counter(Counter::sessions_created_inbound), 1u);
    // Stricter now: that session does not make server2 an endpoint the subscriber sent to.
    h.controller().set_filtering(common::FilteringMode::address_and_port_dependent);
    h.outside().inject(outside_udp(t().server2, 7200, ext_addr, ext.second));
    h.poll(2);
    EXPECT_EQ(inside_arrivals(), 0u);
    EXPECT_EQ(h.counter(Counter::drop_out2in_filtered), 1u);
    h.controller().set_filtering(common::FilteringMode::address_dependent);
    h.outside().inject(outside_udp(t().server2, 7200, ext_addr, ext.second));
    h.poll(2);
    EXPECT_EQ(inside_arrivals(), 0u);
    // Once the subscriber answers server2, server2 passes any filter.
    h.inside().inject(inside_udp(t().subscriber1, 5000, t().server2, 7200));
    h.poll(2);
    EXPECT_EQ(sent_from(), ext);
    h.controller().set_filtering(common::FilteringMode::address_and_port_dependent);
    h.outside().inject(outside_udp(t().server2, 7200, ext_addr, ext.second));
    h.poll(2);
    EXPECT_EQ(inside_arrivals(), 1u);
}

TEST_P(LiveConfig, PoolAddedWhileRunningIsAnsweredAndUsed) {
    h.settings().nat.pool = {*common::Ipv4Prefix::parse("198.51.100.1/32")};
    // A small range in small blocks: enough for the six subscribers over three addresses.
    h.settings().nat.port_range = {5000, static_cast<uint16_t>(5000 + 512 * GetParam() - 1)};
    h.settings().nat.port_block_size = 64;
    start();
    const auto added = ip("203.0.113.129");
    h.outside().inject(arp_request(t().gateway_mac, t().gateway, added));
    h.poll(2);
    EXPECT_TRUE(h.outside().drain().empty()) << "ARP answered for an address not in the pool";
    EXPECT_THROW(h.controller().add_pool(*common::Ipv4Prefix::parse("198.51.100.0/30")),
                 common::ConfigError);
    h.controller().add_pool(*common::Ipv4Prefix::parse("203.0.113.128/31"));
    h.outside().inject(arp_request(t().gateway_mac, t().gateway, added));
    h.poll(2);
    EXPECT_EQ(h.outside().drain().size(), 1u);
    // The new addresses serve new subscribers (paired pooling spreads them).
    std::set<uint32_t> used;
    for (uint8_t i = 0; i < 6; ++i) {
        const common::Ipv4Address sub{t().subscriber1.value + 0x100 + i};
        h.inside().inject(
            arp_request(common::MacAddress{{2, 0, 0, 0, 9, i}}, sub, t().inside.address));
        h.poll(2);
        h.inside().drain();
        h.inside().inject(PacketBuilder()
                              .ethernet(common::MacAddress{{2, 0, 0, 0, 9, i}}, h.inside().mac())
                              .ipv4(sub, t().server1)
                              .udp(5000, 53)
                              .build());
        h.poll(2);
        used.insert(sent_from().first);
    }
    EXPECT_TRUE(used.count(added.value) || used.count(added.value - 1)) << "new pool unused";
}

INSTANTIATE_TEST_SUITE_P(Workers, LiveConfig, ::testing::Values(1u, 2u),
                         [](const auto& info) { return std::to_string(info.param) + "workers"; });

}  // namespace
}  // namespace cgn::test
