// Fragments through the worker (RFC 4787 REQ-14): every fragment of a UDP datagram or ICMP
// echo is translated with the ports its first fragment carries, in order or out of order, in
// both directions, with one and two workers; the reassembled datagram's checksum is right; held
// fragments and tracked datagrams are bounded, and what exceeds them is counted (REQ-14a).

#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "common/byte_order.hpp"
#include "common/checksum.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::load_be16;
using common::load_be32;
using common::PacketBuilder;
using common::store_be16;
namespace eth = common::eth;
namespace ipv4 = common::ipv4;

constexpr size_t kIp = eth::kHeaderLength;

struct Reassembled {
    uint32_t src = 0, dst = 0;
    uint8_t protocol = 0;
    std::vector<uint8_t> payload;  // the transport header and data
    bool ip_checksums_ok = true;
    bool same_addresses = true;
};

// Puts translated fragments back together (by offset) and checks each one's IP header.
Reassembled reassemble(const std::vector<Frame>& frames) {
    Reassembled r;
    std::map<size_t, std::vector<uint8_t>> parts;
    for (const auto& f : frames) {
        const size_t ihl = (f[kIp] & 0x0f) * 4u;
        r.ip_checksums_ok &= common::checksum_finish(common::checksum_partial(&f[kIp], ihl)) == 0;
        const uint32_t src = load_be32(&f[kIp + ipv4::kSrc]);
        const uint32_t dst = load_be32(&f[kIp + ipv4::kDst]);
        if (r.protocol == 0) {
            r.src = src;
            r.dst = dst;
            r.protocol = f[kIp + ipv4::kProtocol];
        }
        r.same_addresses &= src == r.src && dst == r.dst;
        const size_t off = (load_be16(&f[kIp + ipv4::kFragment]) & ipv4::kFragmentOffsetMask) * 8u;
        const size_t len = load_be16(&f[kIp + ipv4::kTotalLength]) - ihl;
        parts[off] = std::vector<uint8_t>(f.begin() + static_cast<long>(kIp + ihl),
                                          f.begin() + static_cast<long>(kIp + ihl + len));
    }
    for (auto& [off, bytes] : parts) {
        EXPECT_EQ(off, r.payload.size()) << "a hole in the translated datagram";
        r.payload.insert(r.payload.end(), bytes.begin(), bytes.end());
    }
    return r;
}

// The UDP checksum of a reassembled datagram, over its pseudo-header: 0 when right.
uint16_t udp_checksum_residue(const Reassembled& r) {
    uint8_t pseudo[12];
    common::store_be32(pseudo, r.src);
    common::store_be32(pseudo + 4, r.dst);
    pseudo[8] = 0;
    pseudo[9] = ipv4::kProtoUdp;
    store_be16(pseudo + 10, static_cast<uint16_t>(r.payload.size()));
    uint32_t sum = common::checksum_partial(pseudo, sizeof pseudo);
    sum = common::checksum_partial(r.payload.data(), r.payload.size(), sum);
    return common::checksum_finish(sum);
}

std::string pattern(size_t n, char seed) {
    std::string s(n, ' ');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
    return s;
}

enum class Order { in_order, reverse, first_last };

std::vector<Frame> ordered(std::vector<Frame> f, Order o) {
    if (o == Order::reverse) std::reverse(f.begin(), f.end());
    if (o == Order::first_last) std::rotate(f.begin(), f.begin() + 1, f.end());
    return f;
}

std::string order_name(Order o) {
    switch (o) {
        case Order::in_order:
            return "in_order";
        case Order::reverse:
            return "reverse";
        case Order::first_last:
            return "first_last";
    }
    return "?";
}

class Fragments : public ::testing::TestWithParam<std::tuple<unsigned, Order>> {
protected:
    Fragments() : h(std::get<0>(GetParam())) {}
    void SetUp() override {
        h.start();
        h.resolve_neighbors();
        h.reset_counters();
    }
    const Topology& t() { return h.topo(); }
    DataplaneHarness h;
};

TEST_P(Fragments, LargeUdpDatagramBothWays) {
    const Order order = std::get<1>(GetParam());
    const std::string out_data = pattern(3000, 1);
    const Frame out_whole = PacketBuilder()
                                .ethernet(t().subscriber1_mac, h.inside().mac())
                                .ipv4(t().subscriber1, t().server1)
                                .udp(40000, 5000)
                                .payload(out_data)
                                .build();
    for (const auto& f : ordered(fragment(out_whole, 1232, 0x1234), order)) h.inside().inject(f);
    h.poll(4);
    auto sent = h.outside().drain();
    ASSERT_EQ(sent.size(), 3u);
    const Reassembled r = reassemble(sent);
    const auto ext = *h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 40000);
    EXPECT_TRUE(r.ip_checksums_ok);
    EXPECT_TRUE(r.same_addresses) << "every fragment gets the external address";
    EXPECT_EQ(r.src, ext.first);
    EXPECT_EQ(r.dst, t().server1.value);
    ASSERT_EQ(r.payload.size(), 8 + out_data.size());
    EXPECT_EQ(load_be16(&r.payload[0]), ext.second);
    EXPECT_EQ(udp_checksum_residue(r), 0) << "the first fragment's checksum update covers all";
    EXPECT_EQ(std::string(r.payload.begin() + 8, r.payload.end()), out_data);

    // The answer, as large, comes back in fragments on any queue.
    const std::string in_data = pattern(2500, 2);
    const Frame in_whole = PacketBuilder()
                               .ethernet(t().gateway_mac, h.outside().mac())
                               .ipv4(t().server1, common::Ipv4Address{ext.first})
                               .udp(5000, ext.second)
                               .payload(in_data)
                               .build();
    uint16_t q = 0;
    for (const auto& f : ordered(fragment(in_whole, 1000, 0x4321), order))
        h.outside().inject(f, static_cast<uint16_t>(q++ % h.workers()));
    h.poll(6);
    auto received = h.inside().drain();
    ASSERT_EQ(received.size(), 3u);
    const Reassembled back = reassemble(received);
    EXPECT_TRUE(back.ip_checksums_ok);
    EXPECT_TRUE(back.same_addresses);
    EXPECT_EQ(back.dst, t().subscriber1.value);
    EXPECT_EQ(load_be16(&back.payload[2]), 40000);
    EXPECT_EQ(udp_checksum_residue(back), 0);
    EXPECT_EQ(std::string(back.payload.begin() + 8, back.payload.end()), in_data);
    EXPECT_EQ(h.counter(Counter::drop_fragment_timeout), 0u);
}

TEST_P(Fragments, LargeEchoRequestAndReply) {
    const Order order = std::get<1>(GetParam());
    const Frame whole = PacketBuilder()
                            .ethernet(t().subscriber1_mac, h.inside().mac())
                            .ipv4(t().subscriber1, t().server1)
                            .icmp_echo(common::icmp::kEchoRequest, 0x777, 1)
                            .payload(pattern(4000, 3))
                            .build();
    for (const auto& f : ordered(fragment(whole, 1480, 99), order)) h.inside().inject(f);
    h.poll(4);
    auto sent = h.outside().drain();
    ASSERT_EQ(sent.size(), 3u);
    const Reassembled r = reassemble(sent);
    EXPECT_TRUE(r.same_addresses);
    const uint16_t ext_id = load_be16(&r.payload[common::icmp::kIdentifier]);
    EXPECT_EQ(common::checksum_finish(common::checksum_partial(r.payload.data(), r.payload.size())),
              0)
        << "ICMP checksum over the whole message";
    // The reply: the same message back with type 0.
    std::vector<uint8_t> reply_msg = r.payload;
    reply_msg[0] = common::icmp::kEchoReply;
    store_be16(&reply_msg[2], 0);
    store_be16(&reply_msg[2],
               common::checksum_finish(common::checksum_partial(reply_msg.data(), reply_msg.size())));
    Frame reply = PacketBuilder()
                      .ethernet(t().gateway_mac, h.outside().mac())
                      .ipv4(t().server1, common::Ipv4Address{r.src})
                      .icmp_echo(common::icmp::kEchoReply, ext_id, 1)
                      .payload(std::string(reply_msg.begin() + 8, reply_msg.end()))
                      .build();
    uint16_t q = 0;
    for (const auto& f : ordered(fragment(reply, 1480, 100), order))
        h.outside().inject(f, static_cast<uint16_t>(q++ % h.workers()));
    h.poll(6);
    const auto received = h.inside().drain();
    ASSERT_EQ(received.size(), 3u);
    const Reassembled back = reassemble(received);
    EXPECT_EQ(back.dst, t().subscriber1.value);
    EXPECT_EQ(load_be16(&back.payload[common::icmp::kIdentifier]), 0x777);
    EXPECT_EQ(common::checksum_finish(
                  common::checksum_partial(back.payload.data(), back.payload.size())),
              0);
}

INSTANTIATE_TEST_SUITE_P(
    WorkersAndOrders, Fragments,
    ::testing::Combine(::testing::Values(1u, 2u),
                       ::testing::Values(Order::in_order, Order::reverse, Order::first_last)),
    [](const auto& info) {
        return std::to_string(std::get<0>(info.param)) + "workers_" +
               order_name(std::get<1>(info.param));
    });

// REQ-14a: fragments whose first never comes are held a bounded time and then dropped,
// counted; a flood of them fills a bounded table, and unfragmented traffic goes on.
TEST(FragmentLimits, HeldFragmentsTimeOutAndTheTableIsBounded) {
    DataplaneHarness h;
    h.settings().fragment_capacity = 16;
    h.settings().fragment_timeout_ms = 2000;
    h.start();
    h.resolve_neighbors();
    h.reset_counters();
    const Topology& t = h.topo();
    for (uint16_t id = 0; id < 40; ++id) {
        const Frame whole = PacketBuilder()
                                .ethernet(t.subscriber1_mac, h.inside().mac())
                                .ipv4(t.subscriber1, t.server1)
                                .udp(41000, 53)
                                .payload(pattern(2000, 4))
                                .build();
        auto parts = fragment(whole, 1000, id);
        h.inside().inject(parts[1]);  // never the first
        h.poll();
    }
    EXPECT_TRUE(h.outside().drain().empty());
    EXPECT_EQ(h.counter(Counter::fragments_held), 16u);
    EXPECT_EQ(h.counter(Counter::drop_fragment_table_full), 24u);
    // Unfragmented traffic is unaffected.
    h.inside().inject(PacketBuilder()
                          .ethernet(t.subscriber1_mac, h.inside().mac())
                          .ipv4(t.subscriber1, t.server1)
                          .udp(42000, 53)
                          .build());
    h.poll();
    EXPECT_EQ(h.outside().drain().size(), 1u);
    h.clock().advance_ms(1999);
    h.poll();
    EXPECT_EQ(h.counter(Counter::drop_fragment_timeout), 0u);
    h.clock().advance_ms(1);
    h.poll();
    EXPECT_EQ(h.counter(Counter::drop_fragment_timeout), 16u);
    // The table has room again.
    const Frame whole = PacketBuilder()
                            .ethernet(t.subscriber1_mac, h.inside().mac())
                            .ipv4(t.subscriber1, t.server1)
                            .udp(41000, 53)
                            .payload(pattern(2000, 4))
                            .build();
    for (const auto& f : fragment(whole, 1000, 500)) h.inside().inject(f);
    h.poll();
    EXPECT_EQ(h.outside().drain().size(), 3u);  // 2008 bytes: 1000 + 1000 + 8
}

// A later fragment never opens a session by itself: its first was refused, so it is dropped.
TEST(FragmentLimits, FragmentsOfARefusedDatagramAreDropped) {
    DataplaneHarness h;
    h.settings().nat.limits.max_sessions = 1;
    h.start();
    h.resolve_neighbors();
    h.reset_counters();
    const Topology& t = h.topo();
    h.inside().inject(PacketBuilder()
                          .ethernet(t.subscriber1_mac, h.inside().mac())
                          .ipv4(t.subscriber1, t.server1)
                          .udp(42000, 53)
                          .build());
    const Frame whole = PacketBuilder()
                            .ethernet(t.subscriber1_mac, h.inside().mac())
                            .ipv4(t.subscriber1, t.server2)
                            .udp(42001, 53)
                            .payload(pattern(2000, 5))
                            .build();
    for (const auto& f : fragment(whole, 1000, 7)) h.inside().inject(f);
    h.poll(2);
    EXPECT_EQ(h.outside().drain().size(), 1u) << "only the unfragmented packet";
    EXPECT_EQ(h.counter(Counter::drop_quota_sessions), 1u);
    EXPECT_EQ(h.counter(Counter::drop_fragment_no_session), 2u);  // the two later fragments
}

}  // namespace
}  // namespace cgn::test
