// Every received frame ends in exactly one outcome (issue 9 item 2): random mixed traffic from
// both sides, in full bursts, through one and two workers; after every poll the frame balance
// of common/frame_accounting.hpp holds (per origin: began == ended + held; the outcome counters
// sum to the frames ended), and once the traffic stops and the timeouts pass nothing is held,
// received == ended per side, and every mbuf is back in the pool.
//
// The traffic (seeded; the seed is printed on failure, CGN_TEST_SEED=<n> reruns one): new and
// established UDP/TCP/ICMP flows, replies, unsolicited and filtered inbound, ICMP errors valid
// and malformed both ways, fragments in any order (some never complete), ARP requests and
// replies (some for unknown subscribers whose replies wait for resolution), malformed and
// mutated frames, TTL 1, hairpinning, packets for cgnd's own addresses, packets too big for
// the outside link (fragmented or refused), new sessions refused at a per-mapping quota.

#include <gtest/gtest.h>
#include <rte_mempool.h>

#include <string>
#include <tuple>
#include <vector>

#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "common/random.hpp"
#include "tests/dataplane/harness.hpp"
#include "tests/dataplane/mixed_traffic.hpp"

namespace cgn::test {
namespace {

using common::Ipv4Address;
using common::MacAddress;
using common::PacketBuilder;
namespace ipv4 = common::ipv4;
namespace icmp = common::icmp;
namespace tcp = common::tcp;

struct Endpoint {
    uint8_t protocol;
    uint32_t addr;
    uint16_t port;
};

class TrafficMix {
public:
    TrafficMix(DataplaneHarness& h, uint64_t seed) : h_(h), rng_(seed) {
        const Topology& t = h.topo();
        subscribers_ = {{t.subscriber1, t.subscriber1_mac}, {t.subscriber2, t.subscriber2_mac}};
        // Subscribers cgnd has not heard of: packets to them wait for ARP (and some get an
        // answer, see inside_arp).
        for (uint8_t i = 0; i < 3; ++i)
            subscribers_.push_back(
                {Ipv4Address{t.subscriber1.value + 10 + i},
                 *MacAddress::parse(("02:00:00:00:00:2" + std::to_string(i)).c_str())});
        servers_ = {t.server1, t.server2, Topology::ip("203.0.113.30")};
    }

    // Frames from the inside / outside, one "event" at a time (a fragmented datagram is
    // several frames, shuffled).
    void add_inside(std::vector<Frame>& out) {
        const uint32_t kind = rng_.below(100);
        if (kind < 30) return out.push_back(flow_packet());
        if (kind < 36) return add_fragments(out, true);
        if (kind < 42) return out.push_back(inside_icmp_error());
        if (kind < 48) return out.push_back(hairpin_packet());
        if (kind < 53) return out.push_back(ttl_one(flow_packet()));
        if (kind < 58) return out.push_back(to_own_address(true));
        if (kind < 66) return out.push_back(inside_arp());
        if (kind < 71) return out.push_back(too_big());
        if (kind < 78) return out.push_back(oddity(true));
        return out.push_back(mutate(flow_packet(), rng_));
    }
    void add_outside(std::vector<Frame>& out) {
        const uint32_t kind = rng_.below(100);
        if (kind < 32) return out.push_back(reply());
        if (kind < 40) return out.push_back(unsolicited());
        if (kind < 46) return add_fragments(out, false);
        if (kind < 54) return out.push_back(outside_icmp_error());
        if (kind < 58) return out.push_back(ttl_one(reply()));
        if (kind < 63) return out.push_back(to_own_address(false));
        if (kind < 71) return out.push_back(outside_arp());
        if (kind < 78) return out.push_back(oddity(false));
        return out.push_back(mutate(reply(), rng_));
    }

private:
    struct Host {
        Ipv4Address ip;
        MacAddress mac;
    };
    const Topology& t() const { return h_.topo(); }
    const Host& subscriber() { return subscribers_[rng_.below(subscribers_.size())]; }
    Ipv4Address server() { return servers_[rng_.below(servers_.size())]; }
    Ipv4Address pool_address() { return Ipv4Address{t().pool.address.value + rng_.below(4)}; }
    uint16_t id() { return static_cast<uint16_t>(rng_.next()); }
    // Few ports, so flows repeat (established) as well as start.
    uint16_t local_port() { return static_cast<uint16_t>(40000 + rng_.below(12)); }
    uint8_t protocol() {
        const uint32_t r = rng_.below(3);
        return r == 0 ? ipv4::kProtoUdp : r == 1 ? ipv4::kProtoTcp : ipv4::kProtoIcmp;
    }
    uint8_t tcp_flags() {
        static constexpr uint8_t kFlags[] = {tcp::kSyn,
                                             tcp::kAck_,
                                             tcp::kSyn | tcp::kAck_,
                                             tcp::kFin | tcp::kAck_,
                                             tcp::kRst,
                                             tcp::kPsh | tcp::kAck_};
        return kFlags[rng_.below(sizeof kFlags)];
    }
    PacketBuilder& l4(PacketBuilder& b, uint8_t protocol, uint16_t sport, uint16_t dport,
                      bool request) {
        if (protocol == ipv4::kProtoUdp) return b.udp(sport, dport);
        if (protocol == ipv4::kProtoTcp)
            return b.tcp(sport, dport, tcp_flags(), rng_.next() & 0xffff);
        return b.icmp_echo(request ? icmp::kEchoRequest : icmp::kEchoReply, request ? sport : dport,
                           static_cast<uint16_t>(rng_.below(100)));
    }

    Frame flow_packet() {
        const Host& s = subscriber();
        const uint8_t protocol = this->protocol();
        const uint16_t port = local_port();
        used_.push_back({protocol, s.ip.value, port});
        PacketBuilder b;
        b.ethernet(s.mac, h_.inside().mac()).ipv4(s.ip, server(), 64, id());
        l4(b, protocol, port,
           protocol == ipv4::kProtoIcmp ? 0 : static_cast<uint16_t>(53 + rng_.below(3)), true);
        return b.payload(std::string(rng_.below(40), 'x')).build();
    }
    // An external endpoint of a flow seen so far (or a made-up one).
    Endpoint external() {
        if (!used_.empty()) {
            const Endpoint& e = used_[rng_.below(used_.size())];
            if (auto m = h_.find_mapping(e.protocol, e.addr, e.port))
                return {e.protocol, m->first, m->second};
        }
        return {ipv4::kProtoUdp, pool_address().value,
                static_cast<uint16_t>(1024 + rng_.below(60000))};
    }
    Frame reply() {
        const Endpoint e = external();
        PacketBuilder b;
        // From one of the servers the subscribers talk to, or another host (filtered).
        const Ipv4Address from = rng_.below(4) == 0 ? Topology::ip("203.0.113.99") : server();
        b.ethernet(t().gateway_mac, h_.outside().mac()).ipv4(from, Ipv4Address{e.addr}, 64, id());
        l4(b, e.protocol, static_cast<uint16_t>(53 + rng_.below(3)), e.port, false);
        return b.payload(std::string(rng_.below(40), 'r')).build();
    }
    Frame unsolicited() {
        PacketBuilder b;
        b.ethernet(t().gateway_mac, h_.outside().mac()).ipv4(server(), pool_address(), 64, id());
        l4(b, protocol(), 80, static_cast<uint16_t>(1024 + rng_.below(60000)), true);
        return b.payload("knock").build();
    }
    Frame hairpin_packet() {
        const Host& s = subscriber();
        const Endpoint e = external();
        PacketBuilder b;
        b.ethernet(s.mac, h_.inside().mac()).ipv4(s.ip, Ipv4Address{e.addr}, 64, id());
        const uint16_t port = local_port();
        used_.push_back({e.protocol, s.ip.value, port});
        l4(b, e.protocol, port, e.port, true);
        return b.payload("hairpin").build();
    }
    Frame ttl_one(Frame f) {
        f[14 + ipv4::kTtl] = 1;
        common::store_be16(&f[14 + ipv4::kChecksum], 0);
        common::store_be16(&f[14 + ipv4::kChecksum],
                           common::checksum_finish(common::checksum_partial(&f[14], 20)));
        return f;
    }
    // A UDP datagram in 2 to 4 fragments, shuffled; now and then one is left out (it waits,
    // then times out).
    void add_fragments(std::vector<Frame>& out, bool from_inside) {
        Frame whole;
        const std::string data(24 + 8 * rng_.below(12), 'f');
        if (from_inside) {
            const Host& s = subscriber();
            const uint16_t port = local_port();
            used_.push_back({ipv4::kProtoUdp, s.ip.value, port});
            whole = PacketBuilder()
                        .ethernet(s.mac, h_.inside().mac())
                        .ipv4(s.ip, server())
                        .udp(port, 53)
                        .payload(data)
                        .build();
        } else {
            Endpoint e = external();
            if (e.protocol != ipv4::kProtoUdp)
                e.port = static_cast<uint16_t>(1024 + rng_.below(60000));
            whole = PacketBuilder()
                        .ethernet(t().gateway_mac, h_.outside().mac())
                        .ipv4(server(), Ipv4Address{e.addr})
                        .udp(53, e.port)
                        .payload(data)
                        .build();
        }
        const size_t payload = whole.size() - 14 - 20;
        const size_t chunk = 8 * (1 + rng_.below(static_cast<uint32_t>((payload + 7) / 8 / 2)));
        auto pieces = cut_into_fragments(whole, chunk, id());
        if (pieces.size() > 1 && rng_.below(5) == 0)
            pieces.erase(pieces.begin() + rng_.below(pieces.size()));
        shuffle(pieces, rng_);
        out.insert(out.end(), pieces.begin(), pieces.end());
    }
    // An ICMP error a subscriber sends about a packet it received (server -> subscriber), or a
    // malformed one.
    Frame inside_icmp_error() {
        const Host& s = subscriber();
        if (rng_.below(3) == 0)
            return PacketBuilder()
                .ethernet(s.mac, h_.inside().mac())
                .ipv4(s.ip, server())
                .icmp(icmp::kDestUnreachable, 3, 0)
                .payload("short")
                .build();
        const Endpoint e = used_.empty() ? Endpoint{ipv4::kProtoUdp, s.ip.value, 40000}
                                         : used_[rng_.below(used_.size())];
        const Ipv4Address remote = server();
        PacketBuilder quote;
        quote.ipv4(remote, Ipv4Address{e.addr}, 60, id());
        l4(quote, e.protocol, 53, e.port, false);
        return PacketBuilder()
            .ethernet(s.mac, h_.inside().mac())
            .ipv4(Ipv4Address{e.addr}, remote)
            .icmp(icmp::kDestUnreachable, 3, 0)
            .payload(quote.payload("q").build())
            .build();
    }
    // An ICMP error from outside about a packet that left us (external -> server).
    Frame outside_icmp_error() {
        const Endpoint e = external();
        const Ipv4Address remote = server();
        if (rng_.below(3) == 0)
            return PacketBuilder()
                .ethernet(t().gateway_mac, h_.outside().mac())
                .ipv4(Topology::ip("203.0.113.1"), Ipv4Address{e.addr})
                .icmp(icmp::kTimeExceeded, 0, 0)
                .payload("tiny")
                .build();
        PacketBuilder quote;
        quote.ipv4(Ipv4Address{e.addr}, remote, 60, id());
        l4(quote, e.protocol, e.port, 53, true);
        return PacketBuilder()
            .ethernet(t().gateway_mac, h_.outside().mac())
            .ipv4(Topology::ip("203.0.113.1"), Ipv4Address{e.addr})
            .icmp(rng_.below(2) ? icmp::kDestUnreachable : icmp::kTimeExceeded, 1, 0)
            .payload(quote.payload("q").build())
            .build();
    }
    Frame to_own_address(bool inside) {
        const Ipv4Address own = inside ? t().inside.address : t().outside.address;
        PacketBuilder b;
        if (inside) {
            const Host& s = subscriber();
            b.ethernet(s.mac, h_.inside().mac()).ipv4(s.ip, own, 64, id());
        } else {
            b.ethernet(t().gateway_mac, h_.outside().mac()).ipv4(server(), own, 64, id());
        }
        if (rng_.below(2)) return b.icmp_echo(icmp::kEchoRequest, id(), 1).payload("ping").build();
        return b.udp(5351, 5351).payload("pcp?").build();
    }
    // Requests come from the two known subscribers; replies also from two of the unknown ones
    // (answering the worker's requests), never from the last, whose packets wait and are then
    // dropped as unreachable.
    Frame inside_arp() {
        const Host& s = subscribers_[rng_.below(2)];
        const Host& answering =
            subscribers_[rng_.below(static_cast<uint32_t>(subscribers_.size() - 1))];
        switch (rng_.below(4)) {
            case 0:
                return arp_request(s.mac, s.ip, t().inside.address);
            case 1:
                return arp_reply(answering.mac, answering.ip, h_.inside().mac(),
                                 t().inside.address);
            case 2:
                return arp_request(s.mac, s.ip, Topology::ip("100.64.0.99"));
            default: {
                Frame f = arp_request(s.mac, s.ip, t().inside.address);
                f[14 + common::arp::kHardwareLength] = 7;  // malformed
                return f;
            }
        }
    }
    Frame outside_arp() {
        switch (rng_.below(4)) {
            case 0:
                return arp_request(t().gateway_mac, t().gateway, t().outside.address);
            case 1:
                return arp_request(t().gateway_mac, t().gateway, pool_address());
            case 2:
                return arp_reply(t().gateway_mac, t().gateway, h_.outside().mac(),
                                 t().outside.address);
            default:
                return arp_request(t().gateway_mac, t().gateway, Topology::ip("192.0.2.77"));
        }
    }
    // Longer than the outside link's MTU: fragmented without DF, refused with DF.
    Frame too_big() {
        const Host& s = subscriber();
        const uint16_t port = local_port();
        used_.push_back({ipv4::kProtoUdp, s.ip.value, port});
        PacketBuilder b;
        b.ethernet(s.mac, h_.inside().mac()).ipv4(s.ip, server(), 64, id());
        if (rng_.below(2)) b.ipv4_fragment(ipv4::kFlagDontFragment);
        return b.udp(port, 53).payload(std::string(1300 + rng_.below(150), 'B')).build();
    }
    // Frames the worker refuses before looking at IP: another MAC, another ethertype, a
    // martian destination.
    Frame oddity(bool inside) {
        const MacAddress our = inside ? h_.inside().mac() : h_.outside().mac();
        const MacAddress from = inside ? subscriber().mac : t().gateway_mac;
        switch (rng_.below(4)) {
            case 0:
                return PacketBuilder()
                    .ethernet(from, *MacAddress::parse("02:00:00:00:99:99"))
                    .ipv4(t().subscriber1, t().server1)
                    .udp(1, 2)
                    .build();
            case 1: {
                Frame f = PacketBuilder()
                              .ethernet(from, our)
                              .ipv4(t().subscriber1, t().server1)
                              .udp(1, 2)
                              .build();
                common::store_be16(&f[12], common::eth::kTypeIpv6);
                return f;
            }
            case 2:
                return PacketBuilder()
                    .ethernet(from, our)
                    .ipv4(inside ? t().subscriber1 : t().server1,
                          inside ? Topology::ip("100.64.0.50") : Topology::ip("203.0.113.5"))
                    .udp(1, 2)
                    .build();
            default:
                return PacketBuilder()
                    .ethernet(from, our)
                    .ipv4(inside ? t().subscriber1 : t().server1,
                          inside ? t().server1 : pool_address())
                    .raw(47)
                    .payload("gre?")
                    .build();  // a protocol not translated
        }
    }

    DataplaneHarness& h_;
    common::Random rng_;
    std::vector<Host> subscribers_;
    std::vector<Ipv4Address> servers_;
    std::vector<Endpoint> used_;
};

class Accounting : public ::testing::TestWithParam<unsigned> {};

// Polls until the RX rings are empty and the clock has passed every fragment and ARP timeout,
// draining what the workers send.
void settle(DataplaneHarness& h, uint64_t& transmitted) {
    for (int i = 0; i < 64; ++i) {
        h.poll();
        transmitted += h.inside().drain().size() + h.outside().drain().size();
    }
    for (int second = 0; second < 8; ++second) {
        h.clock().advance_ms(1000);
        for (int i = 0; i < 16; ++i) {
            h.poll();
            transmitted += h.inside().drain().size() + h.outside().drain().size();
        }
    }
}

TEST_P(Accounting, EveryReceivedFrameEndsOncePerSide) {
    const unsigned workers = GetParam();
    for (const uint64_t seed : test_seeds({1, 2, 3, 20261202})) {
        SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun: CGN_TEST_SEED=" +
                     std::to_string(seed) + "), workers " + std::to_string(workers));
        DataplaneHarness h(workers);
        h.settings().outside.mtu = 1280;
        h.settings().nat.filtering = common::FilteringMode::address_dependent;
        h.settings().fragment_timeout_ms = 2000;
        // A few remotes per mapping only: some new sessions are refused at the quota and
        // answered with host unreachable (RFC 6888 REQ-11), frames cgnd makes.
        h.settings().nat.limits.max_sessions_per_mapping = 4;
        h.start();
        h.resolve_neighbors();
        const unsigned mbufs_free = rte_mempool_avail_count(h.pool());
        TrafficMix mix(h, seed);
        common::Random queue_rng(seed ^ 0x5eed);
        uint64_t transmitted = 0, injected = 0;
        const uint64_t tx_before =
            h.counter(common::Counter::tx_inside) + h.counter(common::Counter::tx_outside);
        for (int round = 0; round < 400; ++round) {
            // Full bursts: up to two bursts' worth on each side before one poll.
            std::vector<Frame> in, out;
            const uint32_t n_in = queue_rng.below(2 * dp::Worker::kBurst + 1);
            const uint32_t n_out = queue_rng.below(2 * dp::Worker::kBurst + 1);
            while (in.size() < n_in) mix.add_inside(in);
            while (out.size() < n_out) mix.add_outside(out);
            for (const Frame& f : in)
                h.inside().inject(f, static_cast<uint16_t>(queue_rng.below(workers)));
            for (const Frame& f : out)
                h.outside().inject(f, static_cast<uint16_t>(queue_rng.below(workers)));
            injected += in.size() + out.size();
            h.poll();
            transmitted += h.inside().drain().size() + h.outside().drain().size();
            if (round % 10 == 0) h.clock().advance_ms(150);
            const common::FrameBalance b = h.frame_balance();
            ASSERT_TRUE(b.balanced()) << "after round " << round << "\n" << b.describe();
        }
        settle(h, transmitted);
        const common::FrameBalance b = h.frame_balance();
        EXPECT_TRUE(b.balanced()) << b.describe();
        for (const auto origin : {common::FrameOrigin::inside, common::FrameOrigin::outside,
                                  common::FrameOrigin::generated})
            EXPECT_EQ(b.held[static_cast<size_t>(origin)], 0) << b.describe();
        EXPECT_EQ(b.began[0], h.counter(common::Counter::rx_inside));
        EXPECT_EQ(b.ended[0], h.counter(common::Counter::rx_inside)) << b.describe();
        EXPECT_EQ(b.ended[1], h.counter(common::Counter::rx_outside)) << b.describe();
        // Everything injected was received, everything counted as sent was on a TX ring.
        EXPECT_EQ(b.began[0] + b.began[1] - injected, 3u);  // resolve_neighbors' three ARP
        EXPECT_EQ(transmitted, h.counter(common::Counter::tx_inside) +
                                   h.counter(common::Counter::tx_outside) - tx_before);
        EXPECT_EQ(rte_mempool_avail_count(h.pool()), mbufs_free) << "mbufs leaked";
        // The mix reached the outcomes it is meant to exercise.
        for (const auto c :
             {common::Counter::in2out_translated, common::Counter::out2in_translated,
              common::Counter::hairpinned, common::Counter::icmp_errors_translated,
              common::Counter::fragments_held, common::Counter::drop_fragment_timeout,
              common::Counter::drop_ttl_exceeded, common::Counter::icmp_echo_answered,
              common::Counter::arp_requests_answered, common::Counter::arp_consumed,
              common::Counter::neighbor_packets_queued, common::Counter::drop_neighbor_unreachable,
              common::Counter::drop_out2in_filtered, common::Counter::packets_fragmented,
              common::Counter::drop_too_big_df, common::Counter::icmp_quota_unreachable_sent,
              common::Counter::drop_icmp_error_malformed})
            EXPECT_GT(h.counter(c), 0u) << common::counter_name(c);
        if (workers > 1) {
            EXPECT_GT(h.counter(common::Counter::packets_handed_off), 0u);
            EXPECT_GT(h.counter(common::Counter::arp_copies_consumed), 0u);
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Workers, Accounting, ::testing::Values(1u, 2u),
                         [](const auto& info) { return std::to_string(info.param) + "_workers"; });

}  // namespace
}  // namespace cgn::test
