// PCP-held mappings in the worker's NatEngine (RFC 6887 MAP and PEER, RFC 6886's external
// address), with real frames through the real worker. The PCP server's commands are stood in
// for by calls on the worker's NatEngine between polls (single-threaded: the worker is idle).
//   - a MAP mapping is one of the subscriber's own mappings, in its blocks on its paired
//     address, held beyond its sessions and reached from any remote endpoint whatever the
//     filtering (RFC 6887 §11.3);
//   - the suggested external port is honoured when the subscriber may have it, or refused
//     (exact) / replaced (not exact);
//   - an existing dynamic mapping is the answer (§11.3), and it outlives its sessions while
//     held;
//   - the subscriber's quotas apply (USER_EX_QUOTA), an operator's mapping is not PCP's
//     (NOT_AUTHORIZED);
//   - PEER creates the flow as the subscriber's first packet would (§12);
//   - FILTER (§13.3): a held mapping with filters admits only the remote peers they list,
//     whatever the filtering mode; new filters end the sessions from outside they no longer
//     admit; filter sets are bounded;
//   - PORT_SET (RFC 7753): a set of consecutive internal ports held on consecutive external
//     ports of one block, each reached from outside; a smaller set where the ports run out,
//     never split across blocks; parity; a refusal makes nothing.
// A request is not a frame: no drop counter moves for a refused request, and the frame balance
// holds throughout.
//
// Each test says in a "Without ..." comment which assertion fails when the feature is missing.

#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "common/byte_order.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::FilteringMode;
using common::NatEvent;
using common::PacketBuilder;
using dp::BlockMap;
using Status = dp::NatEngine::HoldStatus;
using Endpoint = std::pair<uint32_t, uint16_t>;  // (address, port), host byte order
namespace eth = common::eth;
namespace ipv4 = common::ipv4;
namespace tcp = common::tcp;

common::Ipv4Address ip(const char* text) { return *common::Ipv4Address::parse(text); }
common::Ipv4Address addr(uint32_t a) { return common::Ipv4Address{a}; }

Endpoint source_of(const Frame& f) {
    const uint8_t* l3 = f.data() + eth::kHeaderLength;
    const uint8_t* l4 = l3 + (l3[ipv4::kVersionIhl] & 0x0f) * 4;
    return {common::load_be32(l3 + ipv4::kSrc), common::load_be16(l4 + common::udp::kSrcPort)};
}

class PcpMappings : public ::testing::Test {
protected:
    void start(bool with_control = false) {
        h.start(with_control);
        h.resolve_neighbors();
        h.reset_counters();
        h.take_events();
    }
    // A one-address pool: every subscriber is paired with 198.51.100.1, so that one
    // subscriber's ports are on the address another one suggests.
    void one_address_pool() {
        h.settings().nat.pool = {*common::Ipv4Prefix::parse("198.51.100.1/32")};
    }
    const Topology& t() { return h.topo(); }
    dp::NatEngine& nat() { return h.worker().nat(); }
    uint64_t now() { return h.clock().now_ms(); }
    uint32_t block_size() { return h.blocks().block_size(); }
    uint32_t block_of(uint16_t port) { return *h.blocks().block_of(port); }

    dp::NatEngine::HoldResult hold(uint8_t protocol, uint16_t int_port, uint32_t suggested_addr = 0,
                                   uint16_t suggested_port = 0, bool exact = false,
                                   common::Ipv4Address subscriber = Topology::ip("100.64.0.11")) {
        return nat().hold_mapping(protocol, subscriber.value, int_port, suggested_addr,
                                  suggested_port, exact, now());
    }

    dp::NatEngine::HoldResult hold_set(uint8_t protocol, uint16_t first_int_port, uint16_t count,
                                       bool parity = false, uint16_t suggested_port = 0,
                                       bool exact = false,
                                       common::Ipv4Address subscriber = Topology::ip("100.64.0.11"),
                                       std::vector<dp::PeerFilter> filters = {}) {
        return nat().hold_port_set(protocol, subscriber.value, first_int_port, count, parity, 0,
                                   suggested_port, exact, now(), filters);
    }

    dp::NatEngine::HoldResult hold_filtered(uint8_t protocol, uint16_t int_port,
                                            std::vector<dp::PeerFilter> filters) {
        return nat().hold_mapping(protocol, t().subscriber1.value, int_port, 0, 0, false, now(),
                                  filters);
    }

    Frame udp_out(common::Ipv4Address src, common::MacAddress mac, uint16_t sport,
                  common::Ipv4Address dst, uint16_t dport) {
        return PacketBuilder()
            .ethernet(mac, h.inside().mac())
            .ipv4(src, dst)
            .udp(sport, dport)
            .payload("out")
            .build();
    }
    Frame udp_out(uint16_t sport, common::Ipv4Address dst, uint16_t dport) {
        return udp_out(t().subscriber1, t().subscriber1_mac, sport, dst, dport);
    }
    Frame udp_in(common::Ipv4Address src, uint16_t sport, Endpoint to) {
        return PacketBuilder()
            .ethernet(t().gateway_mac, h.outside().mac())
            .ipv4(src, addr(to.first))
            .udp(sport, to.second)
            .payload("in")
            .build();
    }
    Frame tcp_in(common::Ipv4Address src, uint16_t sport, Endpoint to, uint8_t flags) {
        return PacketBuilder()
            .ethernet(t().gateway_mac, h.outside().mac())
            .ipv4(src, addr(to.first))
            .tcp(sport, to.second, flags, 5000)
            .build();
    }
    // What the subscriber receives for udp_in / tcp_in.
    Frame udp_delivered(common::Ipv4Address src, uint16_t sport, uint16_t int_port) {
        return PacketBuilder()
            .ethernet(h.inside().mac(), t().subscriber1_mac)
            .ipv4(src, t().subscriber1, 63)
            .udp(sport, int_port)
            .payload("in")
            .build();
    }
    Frame tcp_delivered(common::Ipv4Address src, uint16_t sport, uint16_t int_port, uint8_t flags) {
        return PacketBuilder()
            .ethernet(h.inside().mac(), t().subscriber1_mac)
            .ipv4(src, t().subscriber1, 63)
            .tcp(sport, int_port, flags, 5000)
            .build();
    }
    // The external endpoint an outbound datagram left with (and that it left).
    Endpoint sent(const Frame& f) {
        h.inside().inject(f);
        h.poll(2);
        auto out = h.outside().drain();
        EXPECT_EQ(out.size(), 1u);
        return out.empty() ? Endpoint{} : source_of(out[0]);
    }
    void expect_balanced() {
        const common::FrameBalance b = h.frame_balance();
        EXPECT_TRUE(b.balanced()) << b.describe();
    }

    DataplaneHarness h;
};

// Without the hold: hold_mapping does not exist; without EIF for held mappings the two inbound
// packets under address-and-port-dependent filtering are dropped as filtered.
TEST_F(PcpMappings, HeldMappingIsInTheSubscribersBlockAndReachableUnderApdf) {
    h.settings().nat.filtering = FilteringMode::address_and_port_dependent;
    start();
    ASSERT_EQ(nat().subscriber_count(), 0u);
    const auto udp = hold(ipv4::kProtoUdp, 5000);
    ASSERT_EQ(udp.status, Status::held);
    const auto tcp_held = hold(ipv4::kProtoTcp, 6000);
    ASSERT_EQ(tcp_held.status, Status::held);
    EXPECT_EQ(nat().held_mapping_count(), 2u);
    EXPECT_EQ(nat().mapping_count(), 2u);
    EXPECT_EQ(nat().subscriber_count(), 1u);
    EXPECT_EQ(nat().session_count(), 0u);
    // Its port is in a block the subscriber now holds, on its paired address.
    const auto blocks = nat().subscriber_blocks(t().subscriber1.value);
    ASSERT_EQ(blocks.size(), 1u);
    EXPECT_TRUE(t().pool.contains(addr(udp.ext_addr)));
    for (const auto& r : {udp, tcp_held}) {
        EXPECT_EQ(r.ext_addr, blocks[0].first);
        EXPECT_GE(r.ext_port, blocks[0].second);
        EXPECT_LT(r.ext_port, blocks[0].second + block_size());
    }
    EXPECT_EQ(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5000),
              Endpoint(udp.ext_addr, udp.ext_port));
    auto ev = h.take_events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].kind, NatEvent::Kind::block_allocated);
    EXPECT_EQ(ev[0].subscriber, t().subscriber1.value);
    EXPECT_EQ(ev[0].first_port, blocks[0].second);

    // Unsolicited inbound reaches the subscriber (RFC 6887 §11.3: endpoint-independent
    // filtering for a MAP mapping), UDP and a TCP SYN.
    h.outside().inject(udp_in(t().server2, 7777, {udp.ext_addr, udp.ext_port}));
    h.outside().inject(
        tcp_in(t().server1, 8888, {tcp_held.ext_addr, tcp_held.ext_port}, tcp::kSyn));
    h.poll(2);
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 2u);
    EXPECT_EQ(in[0], udp_delivered(t().server2, 7777, 5000));
    EXPECT_EQ(in[1], tcp_delivered(t().server1, 8888, 6000, tcp::kSyn));
    EXPECT_EQ(h.counter(Counter::sessions_created_inbound), 2u);
    EXPECT_EQ(h.counter(Counter::drop_out2in_filtered), 0u);
    // A second packet of the inbound-only session passes the mode's re-check too.
    h.outside().inject(udp_in(t().server2, 7777, {udp.ext_addr, udp.ext_port}));
    h.poll(2);
    EXPECT_EQ(h.inside().drain().size(), 1u);

    // An ordinary dynamic mapping under the same mode refuses the same kind of packet.
    const Endpoint dynamic = sent(udp_out(5001, t().server1, 53));
    EXPECT_EQ(dynamic.first, udp.ext_addr);
    h.outside().inject(udp_in(t().server2, 7777, dynamic));
    h.poll(2);
    EXPECT_TRUE(h.inside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_out2in_filtered), 1u);
    EXPECT_EQ(nat().held_mapping_count(), 2u);
    expect_balanced();
}

// Without the suggestion handling, the ports would be random (the first two EXPECT_EQs fail);
// without claiming the suggested block, the second gets the held block's port; without the
// check of who holds a block, sub1 would take sub2's port.
TEST_F(PcpMappings, SuggestedPortHonouredWhenFreeRefusedOrReplacedWhenTaken) {
    one_address_pool();
    start();
    const auto first = hold(ipv4::kProtoUdp, 5000);
    ASSERT_EQ(first.status, Status::held);
    const uint32_t held_block = block_of(first.ext_port);
    const uint16_t block_start = h.blocks().first_port(held_block);
    h.take_events();

    // (a) A free port of the block it holds.
    const uint16_t in_block = static_cast<uint16_t>(
        first.ext_port == block_start + 10 ? block_start + 11 : block_start + 10);
    auto r = hold(ipv4::kProtoUdp, 5002, 0, in_block, true);
    EXPECT_EQ(r.status, Status::held);
    EXPECT_EQ(r.ext_port, in_block);
    EXPECT_EQ(r.ext_addr, first.ext_addr);
    EXPECT_EQ(nat().subscriber_blocks(t().subscriber1.value).size(), 1u);

    // (b) A port of a free block of this worker's share: that block is claimed for it.
    const uint32_t free_block = (held_block + 5) % h.blocks().blocks_per_address();
    ASSERT_EQ(h.blocks().holder(0, free_block), BlockMap::kFree);
    const auto wanted = static_cast<uint16_t>(h.blocks().first_port(free_block) + 7);
    r = hold(ipv4::kProtoUdp, 5004, first.ext_addr, wanted, true);
    EXPECT_EQ(r.status, Status::held);
    EXPECT_EQ(r.ext_port, wanted);
    EXPECT_EQ(h.blocks().holder(0, free_block), BlockMap::worker_holder(0));
    EXPECT_EQ(nat().subscriber_blocks(t().subscriber1.value).size(), 2u);
    auto ev = h.take_events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].kind, NatEvent::Kind::block_allocated);
    EXPECT_EQ(ev[0].first_port, h.blocks().first_port(free_block));
    // Outside traffic to it arrives.
    h.outside().inject(udp_in(t().server2, 4000, {r.ext_addr, r.ext_port}));
    h.poll(2);
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], udp_delivered(t().server2, 4000, 5004));

    // Its own port already taken by another of its mappings: refused when exact.
    r = hold(ipv4::kProtoUdp, 5006, 0, first.ext_port, true);
    EXPECT_EQ(r.status, Status::cannot_provide_external);
    // Another subscriber's dynamic mapping has the port: exact refuses, otherwise another port.
    const Endpoint other =
        sent(udp_out(t().subscriber2, t().subscriber2_mac, 9000, t().server1, 53));
    ASSERT_EQ(other.first, first.ext_addr);
    r = hold(ipv4::kProtoUdp, 5006, other.first, other.second, true);
    EXPECT_EQ(r.status, Status::cannot_provide_external);
    EXPECT_FALSE(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5006));
    r = hold(ipv4::kProtoUdp, 5006, other.first, other.second, false);
    EXPECT_EQ(r.status, Status::held);
    EXPECT_EQ(r.ext_addr, first.ext_addr);
    EXPECT_NE(r.ext_port, other.second);
    const uint32_t got = block_of(r.ext_port);
    EXPECT_TRUE(got == held_block || got == free_block) << got;
    // An address that is not its paired one cannot be given (RFC 4787 REQ-2 pairing).
    r = hold(ipv4::kProtoUdp, 5008, ip("198.51.100.2").value, static_cast<uint16_t>(in_block + 1),
             true);
    EXPECT_EQ(r.status, Status::cannot_provide_external);
    r = hold(ipv4::kProtoUdp, 5008, ip("198.51.100.2").value, static_cast<uint16_t>(in_block + 1),
             false);
    EXPECT_EQ(r.status, Status::held);
    EXPECT_EQ(r.ext_addr, first.ext_addr);
    EXPECT_EQ(nat().held_mapping_count(), 5u);
    // None of the refusals was a frame.
    EXPECT_EQ(h.counter(Counter::drop_ports_exhausted), 0u);
    expect_balanced();
}

// Block b belongs to worker b % workers: a suggestion in another worker's share is not this
// worker's to claim (its packets would be steered to the other worker).
// Without the share check in claim_block_at, the block of worker 1 is claimed by worker 0.
TEST(PcpMappingShares, SuggestedPortInAnotherWorkersShareIsNotClaimed) {
    DataplaneHarness h(2);
    h.settings().nat.pool = {*common::Ipv4Prefix::parse("198.51.100.1/32")};
    h.start();
    dp::NatEngine& nat = h.worker(0).nat();
    const uint32_t sub = h.topo().subscriber1.value;
    const uint32_t pool = ip("198.51.100.1").value;
    const auto theirs = static_cast<uint16_t>(h.blocks().first_port(1) + 3);
    auto r = nat.hold_mapping(ipv4::kProtoUdp, sub, 5000, pool, theirs, true, h.clock().now_ms());
    EXPECT_EQ(r.status, Status::cannot_provide_external);
    EXPECT_EQ(h.blocks().holder(0, 1), BlockMap::kFree);
    // Refused, the request left nothing behind: no subscriber, no block.
    EXPECT_EQ(nat.subscriber_count(), 0u);
    EXPECT_EQ(nat.held_blocks(), 0u);
    const auto ours = static_cast<uint16_t>(h.blocks().first_port(2) + 3);
    r = nat.hold_mapping(ipv4::kProtoUdp, sub, 5000, pool, ours, true, h.clock().now_ms());
    EXPECT_EQ(r.status, Status::held);
    EXPECT_EQ(r.ext_port, ours);
    EXPECT_EQ(h.blocks().holder(0, 2), BlockMap::worker_holder(0));
}

// Without "existing mapping returned", the hold gets another port; without the held flag the
// mapping goes with its last session (find_mapping empty after the expiry); without
// release_held_mapping it never goes.
TEST_F(PcpMappings, ExistingDynamicMappingIsReturnedAndOutlivesItsSessionsWhileHeld) {
    h.settings().nat.timeouts.udp_s = 30;
    h.settings().nat.filtering = FilteringMode::address_and_port_dependent;
    start();
    const Endpoint dynamic = sent(udp_out(5000, t().server1, 53));
    // RFC 6887 §11.3: the existing mapping is the answer, whatever was suggested.
    auto r =
        hold(ipv4::kProtoUdp, 5000, dynamic.first, static_cast<uint16_t>(dynamic.second ^ 1), true);
    ASSERT_EQ(r.status, Status::held);
    EXPECT_EQ(Endpoint(r.ext_addr, r.ext_port), dynamic);
    // Asked again (a refresh): the same.
    r = hold(ipv4::kProtoUdp, 5000);
    EXPECT_EQ(Endpoint(r.ext_addr, r.ext_port), dynamic);
    EXPECT_EQ(nat().held_mapping_count(), 1u);
    EXPECT_EQ(nat().mapping_count(), 1u);
    // The outbound traffic still leaves from it.
    EXPECT_EQ(sent(udp_out(5000, t().server1, 53)), dynamic);

    // Its only session expires: the mapping stays, held, and still reachable.
    h.clock().advance_ms(31'000);
    h.poll(2);
    ASSERT_EQ(h.counter(Counter::sessions_expired), 1u);
    EXPECT_EQ(nat().session_count(), 0u);
    EXPECT_EQ(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5000), dynamic);
    EXPECT_EQ(nat().mapping_count(), 1u);
    EXPECT_EQ(h.counter(Counter::mappings_removed), 0u);
    EXPECT_EQ(nat().subscriber_blocks(t().subscriber1.value).size(), 1u);
    // Long past the block hold-down too: the held port keeps its block.
    h.clock().advance_ms(h.settings().nat.block_hold_down_ms + 1000);
    h.poll(2);
    EXPECT_EQ(h.counter(Counter::blocks_released), 0u);
    EXPECT_EQ(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5000), dynamic);

    // Withdrawn without sessions: released at once.
    EXPECT_TRUE(nat().release_held_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5000, now()));
    EXPECT_FALSE(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5000));
    EXPECT_EQ(nat().mapping_count(), 0u);
    EXPECT_EQ(nat().held_mapping_count(), 0u);
    EXPECT_FALSE(nat().release_held_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5000, now()));
    // Unheld, the endpoint is filtered again.
    h.outside().inject(udp_in(t().server2, 7000, dynamic));
    h.poll(2);
    EXPECT_TRUE(h.inside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_out2in_no_mapping), 1u);

    // Withdrawn with a session: an ordinary mapping again, it goes with that session.
    const Endpoint second = sent(udp_out(5002, t().server1, 53));
    ASSERT_EQ(hold(ipv4::kProtoUdp, 5002).status, Status::held);
    h.outside().inject(udp_in(t().server2, 7001, second));  // an inbound-only session
    h.poll(2);
    ASSERT_EQ(h.inside().drain().size(), 1u);
    EXPECT_TRUE(nat().release_held_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5002, now()));
    EXPECT_EQ(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5002), second);
    // Its inbound-only session is re-checked against the mode, now that EIF no longer holds.
    h.outside().inject(udp_in(t().server2, 7001, second));
    h.poll(2);
    EXPECT_TRUE(h.inside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_out2in_filtered), 1u);
    h.clock().advance_ms(31'000);
    h.poll(2);
    EXPECT_FALSE(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5002));
    EXPECT_EQ(nat().mapping_count(), 0u);
    expect_balanced();
}

// Without the port quota check the third UDP hold is granted; without the max_blocks check
// in take_suggested_port the exact suggestion claims a second block.
TEST_F(PcpMappings, QuotasApplyToHeldMappings) {
    one_address_pool();
    h.settings().nat.limits.max_ports_per_protocol[0] = 2;  // UDP
    h.settings().nat.limits.max_blocks = 1;
    h.settings().nat.limits.max_sessions = 2;
    start();
    const auto first = hold(ipv4::kProtoUdp, 5000);
    ASSERT_EQ(first.status, Status::held);
    ASSERT_EQ(hold(ipv4::kProtoUdp, 5001).status, Status::held);
    EXPECT_EQ(hold(ipv4::kProtoUdp, 5002).status, Status::user_ex_quota);
    EXPECT_FALSE(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5002));
    auto ev = h.take_events();
    ASSERT_EQ(ev.size(), 2u);  // the block, then the refusal
    EXPECT_EQ(ev[1].kind, NatEvent::Kind::quota_exceeded);
    EXPECT_EQ(ev[1].limit, NatEvent::Limit::ports);
    // The subscriber's packets meet the same quota: the held mappings are its ports.
    h.inside().inject(udp_out(5003, t().server1, 53));
    h.poll(2);
    EXPECT_TRUE(h.outside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_quota_ports), 1u);  // the packet's, not the request's

    // One block at most: a suggestion in another block cannot be had.
    const uint32_t held_block = block_of(first.ext_port);
    const uint32_t other_block = (held_block + 1) % h.blocks().blocks_per_address();
    const auto elsewhere = static_cast<uint16_t>(h.blocks().first_port(other_block) + 1);
    auto r = hold(ipv4::kProtoTcp, 6000, 0, elsewhere, true);
    EXPECT_EQ(r.status, Status::cannot_provide_external);
    EXPECT_EQ(h.blocks().holder(0, other_block), BlockMap::kFree);
    r = hold(ipv4::kProtoTcp, 6000, 0, elsewhere, false);
    EXPECT_EQ(r.status, Status::held);
    EXPECT_EQ(block_of(r.ext_port), held_block);
    EXPECT_EQ(nat().subscriber_blocks(t().subscriber1.value).size(), 1u);

    // PEER meets the session quota as the subscriber's packets do.
    EXPECT_EQ(
        nat()
            .peer_flow(ipv4::kProtoTcp, t().subscriber1.value, 6000, t().server1.value, 443, now())
            .status,
        Status::held);
    EXPECT_EQ(
        nat()
            .peer_flow(ipv4::kProtoTcp, t().subscriber1.value, 6000, t().server2.value, 443, now())
            .status,
        Status::held);
    EXPECT_EQ(
        nat()
            .peer_flow(ipv4::kProtoTcp, t().subscriber1.value, 6000, t().server1.value, 444, now())
            .status,
        Status::user_ex_quota);
    // No drop counter moved for a request.
    EXPECT_EQ(h.counter(Counter::drop_quota_sessions), 0u);
    EXPECT_EQ(h.counter(Counter::drop_quota_blocks), 0u);
    expect_balanced();
}

// Without the operator-mapping checks, PCP would take the endpoint a static mapping names:
// before the static mapping is made in the worker (the explicit table's lookup) and after
// (Mapping::subscriber == kNoSlot).
TEST_F(PcpMappings, OperatorMappingIsNotAuthorized) {
    start(true);
    h.controller().add_static(
        *common::StaticMapping::parse("udp 100.64.0.11:40000 198.51.100.1:80"));
    EXPECT_EQ(hold(ipv4::kProtoUdp, 40000).status, Status::not_authorized);
    EXPECT_EQ(nat().subscriber_count(), 0u);
    EXPECT_EQ(sent(udp_out(40000, t().server1, 53)), Endpoint(ip("198.51.100.1").value, 80));
    EXPECT_EQ(hold(ipv4::kProtoUdp, 40000).status, Status::not_authorized);
    EXPECT_EQ(nat().held_mapping_count(), 0u);
    EXPECT_EQ(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 40000),
              Endpoint(ip("198.51.100.1").value, 80));
    // Protocols PCP does not map here.
    EXPECT_EQ(hold(ipv4::kProtoIcmp, 1).status, Status::not_authorized);
    EXPECT_EQ(
        nat()
            .peer_flow(ipv4::kProtoIcmp, t().subscriber1.value, 1, t().server1.value, 0, now())
            .status,
        Status::not_authorized);
    EXPECT_EQ(nat().subscriber_count(), 0u);
    expect_balanced();
}

// A held mapping is not the "dynamic mapping" a command drops (the PCP server still answers
// for it); the drop of a whole address (a one-to-one mapping added) takes it.
// Without the held check in drop_mapping, the first find_mapping is empty; without
// remove_mapping's release of a held mapping with no session, drop_address leaves it.
TEST_F(PcpMappings, DropCommandsAndHeldMappings) {
    start();
    const auto r = hold(ipv4::kProtoUdp, 5000);
    ASSERT_EQ(r.status, Status::held);
    ASSERT_EQ(hold(ipv4::kProtoUdp, 5001).status, Status::held);
    sent(udp_out(5001, t().server1, 53));  // one with a session
    EXPECT_EQ(nat().drop_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5000,
                                 dp::NatEngine::MappingKind::dynamic_mapping),
              0u);
    EXPECT_EQ(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5000),
              Endpoint(r.ext_addr, r.ext_port));
    uint32_t cursor = 0;
    while (!nat().drop_address(t().subscriber1.value, cursor, 100)) {
    }
    EXPECT_FALSE(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5000));
    EXPECT_FALSE(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5001));
    EXPECT_EQ(nat().mapping_count(), 0u);
    EXPECT_EQ(nat().session_count(), 0u);
    EXPECT_EQ(nat().held_mapping_count(), 0u);
    expect_balanced();
}

// RFC 6886 §3.2: the external address NAT-PMP announces is the one the subscriber's mappings
// get. Without the block paired_address claims, the pairing would never end (subscriber_count
// stays 2 after the hold-down); without the pairing, hold_mapping could pick another address.
TEST_F(PcpMappings, PairedAddressIsTheHeldMappingsAndEndsWithTheHoldDown) {
    h.settings().nat.block_hold_down_ms = 60'000;
    start();
    const auto a1 = nat().paired_address(t().subscriber1.value, now());
    ASSERT_TRUE(a1);
    EXPECT_TRUE(t().pool.contains(addr(*a1)));
    EXPECT_EQ(nat().subscriber_count(), 1u);
    EXPECT_EQ(nat().mapping_count(), 0u);
    EXPECT_EQ(nat().held_blocks(), 1u);
    // Asked again: the same, nothing more claimed.
    EXPECT_EQ(nat().paired_address(t().subscriber1.value, now()), a1);
    EXPECT_EQ(nat().held_blocks(), 1u);
    // Another subscriber is paired elsewhere (the address with the most free blocks).
    const auto a2 = nat().paired_address(t().subscriber2.value, now());
    ASSERT_TRUE(a2);
    EXPECT_NE(*a2, *a1);
    // sub1's mappings are on its announced address, held or not.
    const auto r = hold(ipv4::kProtoUdp, 5000);
    ASSERT_EQ(r.status, Status::held);
    EXPECT_EQ(r.ext_addr, *a1);
    EXPECT_EQ(sent(udp_out(5001, t().server1, 53)).first, *a1);
    EXPECT_EQ(nat().subscriber_blocks(t().subscriber1.value).size(), 1u);

    // sub2 held nothing but its block: the hold-down ends its pairing.
    h.clock().advance_ms(60'000);
    h.poll(2);
    EXPECT_EQ(nat().subscriber_count(), 1u);
    EXPECT_FALSE(nat().subscriber_sessions(t().subscriber2.value));
    EXPECT_EQ(nat().held_blocks(), 1u);
    // sub1's goes once its mappings are gone and the hold-down has passed.
    EXPECT_TRUE(nat().release_held_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5000, now()));
    h.clock().advance_ms(uint64_t{h.settings().nat.timeouts.udp_s} * 1000);
    h.poll(2);
    EXPECT_EQ(nat().mapping_count(), 0u);
    EXPECT_EQ(nat().subscriber_count(), 1u);  // the block's hold-down runs
    h.clock().advance_ms(60'000);
    h.poll(2);
    EXPECT_EQ(nat().subscriber_count(), 0u);
    EXPECT_EQ(nat().held_blocks(), 0u);
    EXPECT_EQ(h.counter(Counter::blocks_released), 2u);
    expect_balanced();
}

// RFC 6887 §12 PEER: the flow as if the subscriber had sent its first packet.
// Without peer_flow the reply from the remote, arriving first, is dropped under APDF.
TEST_F(PcpMappings, PeerFlowCreatesTheSessionTheSubscriberThenUses) {
    h.settings().nat.filtering = FilteringMode::address_and_port_dependent;
    start();
    auto r =
        nat().peer_flow(ipv4::kProtoUdp, t().subscriber1.value, 5000, t().server1.value, 53, now());
    ASSERT_EQ(r.status, Status::held);
    EXPECT_EQ(r.lifetime_s, h.settings().nat.timeouts.udp_s);
    EXPECT_EQ(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5000),
              Endpoint(r.ext_addr, r.ext_port));
    EXPECT_EQ(nat().session_count(), 1u);
    EXPECT_EQ(*nat().subscriber_sessions(t().subscriber1.value), 1u);
    EXPECT_EQ(nat().held_mapping_count(), 0u);  // an ordinary dynamic mapping
    // The remote's packet may come first: the session is there.
    h.outside().inject(udp_in(t().server1, 53, {r.ext_addr, r.ext_port}));
    h.poll(2);
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], udp_delivered(t().server1, 53, 5000));
    // The subscriber's packets of the flow take the same external endpoint (the session's).
    EXPECT_EQ(sent(udp_out(5000, t().server1, 53)), Endpoint(r.ext_addr, r.ext_port));
    EXPECT_EQ(h.counter(Counter::sessions_created), 1u);
    // Another remote is still filtered.
    h.outside().inject(udp_in(t().server2, 53, {r.ext_addr, r.ext_port}));
    h.poll(2);
    EXPECT_TRUE(h.inside().drain().empty());
    EXPECT_EQ(h.counter(Counter::drop_out2in_filtered), 1u);
    // Asked again: found, the same.
    const auto again =
        nat().peer_flow(ipv4::kProtoUdp, t().subscriber1.value, 5000, t().server1.value, 53, now());
    EXPECT_EQ(again.status, Status::held);
    EXPECT_EQ(Endpoint(again.ext_addr, again.ext_port), Endpoint(r.ext_addr, r.ext_port));
    EXPECT_EQ(nat().session_count(), 1u);
    // The same mapping for another remote of the same internal endpoint (endpoint-independent
    // mapping).
    const auto other =
        nat().peer_flow(ipv4::kProtoUdp, t().subscriber1.value, 5000, t().server2.value, 99, now());
    EXPECT_EQ(Endpoint(other.ext_addr, other.ext_port), Endpoint(r.ext_addr, r.ext_port));
    EXPECT_EQ(nat().session_count(), 2u);

    // TCP: a session without a segment is opening (no SYN seen).
    r = nat().peer_flow(ipv4::kProtoTcp, t().subscriber1.value, 6000, t().server1.value, 443,
                        now());
    ASSERT_EQ(r.status, Status::held);
    EXPECT_EQ(r.lifetime_s, h.settings().nat.timeouts.tcp_opening_s);
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server1)
                          .tcp(6000, 443, tcp::kSyn, 1000)
                          .build());
    h.poll(2);
    auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(source_of(out[0]), Endpoint(r.ext_addr, r.ext_port));
    h.outside().inject(tcp_in(t().server1, 443, {r.ext_addr, r.ext_port}, tcp::kSyn | tcp::kAck_));
    h.poll(2);
    in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], tcp_delivered(t().server1, 443, 6000, tcp::kSyn | tcp::kAck_));
    expect_balanced();
}

// One poll, full bursts both ways: other subscribers' outbound flows, inbound to a held
// mapping (UDP, TCP SYN, TCP non-SYN), inbound to an unheld one (filtered), interleaved.
// Nothing of one packet may leak into the next (a held packet's EIF into the unheld one's
// filtering, a refusal into a pass). Without EIF for held mappings the held ones are dropped;
// with a leak the unheld ones pass.
TEST_F(PcpMappings, MixedBurstKeepsEachPacketsOwnVerdict) {
    h.settings().nat.filtering = FilteringMode::address_and_port_dependent;
    start();
    const auto held_udp = hold(ipv4::kProtoUdp, 5000);
    const auto held_tcp = hold(ipv4::kProtoTcp, 6000);
    ASSERT_EQ(held_udp.status, Status::held);
    ASSERT_EQ(held_tcp.status, Status::held);
    const Endpoint unheld = sent(udp_out(5001, t().server1, 53));
    h.reset_counters();

    const Endpoint hu{held_udp.ext_addr, held_udp.ext_port};
    const Endpoint ht{held_tcp.ext_addr, held_tcp.ext_port};
    std::vector<Frame> inbound;
    std::vector<Frame> expected_in;
    for (uint16_t i = 0; i < 8; ++i) {
        const auto sport = static_cast<uint16_t>(20000 + i);
        inbound.push_back(udp_in(t().server2, sport, hu));
        expected_in.push_back(udp_delivered(t().server2, sport, 5000));
        inbound.push_back(udp_in(t().server2, sport, unheld));  // filtered
        inbound.push_back(tcp_in(t().server1, sport, ht, tcp::kSyn));
        expected_in.push_back(tcp_delivered(t().server1, sport, 6000, tcp::kSyn));
        inbound.push_back(tcp_in(t().server1, static_cast<uint16_t>(sport + 100), ht,
                                 tcp::kAck_));  // not a SYN: opens nothing
    }
    ASSERT_EQ(inbound.size(), 32u);
    for (const auto& f : inbound) h.outside().inject(f);
    for (uint16_t i = 0; i < 8; ++i)
        h.inside().inject(udp_out(t().subscriber2, t().subscriber2_mac,
                                  static_cast<uint16_t>(30000 + i), t().server1, 53));
    h.poll();
    h.poll();
    EXPECT_EQ(h.inside().drain(), expected_in);
    EXPECT_EQ(h.outside().drain().size(), 8u);
    EXPECT_EQ(h.counter(Counter::out2in_translated), 16u);
    EXPECT_EQ(h.counter(Counter::sessions_created_inbound), 16u);
    EXPECT_EQ(h.counter(Counter::drop_out2in_filtered), 8u);
    EXPECT_EQ(h.counter(Counter::drop_out2in_tcp_not_syn), 8u);
    EXPECT_EQ(h.counter(Counter::in2out_translated), 8u);
    expect_balanced();
    // The held mappings are still held, the unheld one still filters.
    EXPECT_EQ(nat().held_mapping_count(), 2u);
}

// RFC 6887 §11.3 with RFC 5508: ICMP errors about the traffic of a MAP mapping are translated
// like any other: the remote host's port unreachable about the subscriber's answer reaches
// the subscriber with its quote rewritten, and the subscriber's port unreachable about an
// inbound datagram leaves with the external endpoint in its quote. Without the held
// mapping's session the errors would be drop_icmp_error_no_session.
TEST_F(PcpMappings, IcmpErrorsAboutAMapMappingsTrafficAreTranslated) {
    start();
    const auto held = hold(ipv4::kProtoUdp, 5000);
    ASSERT_EQ(held.status, Status::held);
    const common::Ipv4Address ext{held.ext_addr};
    auto quoted = [](common::Ipv4Address src, uint16_t sport, common::Ipv4Address dst,
                     uint16_t dport, uint8_t ttl) {
        return PacketBuilder().ipv4(src, dst, ttl, 9).udp(sport, dport).payload("q").build();
    };
    // server1 opens a session to the mapping.
    h.outside().inject(udp_in(t().server1, 7777, {held.ext_addr, held.ext_port}));
    h.poll(2);
    ASSERT_EQ(h.inside().drain().size(), 1u);
    // server1 says the subscriber's answer (ext:port -> 7777) found no socket.
    h.outside().inject(PacketBuilder()
                           .ethernet(t().gateway_mac, h.outside().mac())
                           .ipv4(t().server1, ext, 64, 77)
                           .icmp(common::icmp::kDestUnreachable, 3, 0)
                           .payload(quoted(ext, held.ext_port, t().server1, 7777, 63))
                           .build());
    h.poll(2);
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], PacketBuilder()
                         .ethernet(h.inside().mac(), t().subscriber1_mac)
                         .ipv4(t().server1, t().subscriber1, 63, 77)
                         .icmp(common::icmp::kDestUnreachable, 3, 0)
                         .payload(quoted(t().subscriber1, 5000, t().server1, 7777, 63))
                         .build());
    // The subscriber says server1's datagram found no socket.
    h.inside().inject(PacketBuilder()
                          .ethernet(t().subscriber1_mac, h.inside().mac())
                          .ipv4(t().subscriber1, t().server1, 64, 8)
                          .icmp(common::icmp::kDestUnreachable, 3, 0)
                          .payload(quoted(t().server1, 7777, t().subscriber1, 5000, 62))
                          .build());
    h.poll(2);
    auto out = h.outside().drain();
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0], PacketBuilder()
                          .ethernet(h.outside().mac(), t().gateway_mac)
                          .ipv4(ext, t().server1, 63, 8)
                          .icmp(common::icmp::kDestUnreachable, 3, 0)
                          .payload(quoted(t().server1, 7777, ext, held.ext_port, 62))
                          .build());
    EXPECT_EQ(h.counter(Counter::icmp_errors_translated), 2u);
    EXPECT_EQ(h.counter(Counter::drop_icmp_error_no_session), 0u);
    expect_balanced();
}

// RFC 6887 §13.3 FILTER. Without the filter check in inbound_allowed, the peers not listed
// reach the subscriber (in.size() is 4, drop_out2in_filtered 0); without the port check, the
// SYN from port 9999 does.
TEST_F(PcpMappings, FiltersAdmitOnlyTheListedPeersWhateverTheMode) {
    start();  // endpoint-independent filtering: without FILTER anyone could open a session
    const auto u = hold_filtered(ipv4::kProtoUdp, 5000, {dp::PeerFilter::prefix(t().server1.value, 32, 0)});
    ASSERT_EQ(u.status, Status::held);
    // 203.0.113.16/28 holds server2 (203.0.113.20), from port 8888 only.
    const auto tc = hold_filtered(
        ipv4::kProtoTcp, 6000, {dp::PeerFilter::prefix(ip("203.0.113.16").value, 28, 8888)});
    ASSERT_EQ(tc.status, Status::held);
    EXPECT_EQ(nat().filtered_mapping_count(), 2u);
    const Endpoint ue{u.ext_addr, u.ext_port};
    const Endpoint te{tc.ext_addr, tc.ext_port};
    // One mixed burst: each packet its own verdict.
    h.outside().inject(udp_in(t().server1, 7777, ue));               // listed
    h.outside().inject(udp_in(t().server2, 7777, ue));               // not listed
    h.outside().inject(tcp_in(t().server2, 8888, te, tcp::kSyn));    // listed prefix and port
    h.outside().inject(tcp_in(t().server2, 9999, te, tcp::kSyn));    // listed prefix, other port
    h.outside().inject(tcp_in(t().server1, 8888, te, tcp::kSyn));    // other prefix
    h.poll(2);
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 2u);
    EXPECT_EQ(in[0], udp_delivered(t().server1, 7777, 5000));
    EXPECT_EQ(in[1], tcp_delivered(t().server2, 8888, 6000, tcp::kSyn));
    EXPECT_EQ(h.counter(Counter::drop_out2in_filtered), 3u);
    EXPECT_EQ(h.counter(Counter::sessions_created_inbound), 2u);

    // The subscriber's own flow to a peer not listed is its own: the answers come back.
    EXPECT_EQ(sent(udp_out(5000, t().server2, 53)), ue);
    h.outside().inject(udp_in(t().server2, 53, ue));
    h.poll(2);
    EXPECT_EQ(h.inside().drain().size(), 1u);
    EXPECT_EQ(h.counter(Counter::drop_out2in_filtered), 3u);
    expect_balanced();
}

// Without the walk of the mapping's sessions in set_peer_filters, server2's inbound session
// survives the new list (its next packet is delivered, sessions_filtered_out 0); without the
// clear, an empty list leaves the old filter in force and release leaks the set.
TEST_F(PcpMappings, NewFiltersEndTheSessionsTheyNoLongerAdmitAndNoneAdmitsAnyone) {
    start();
    const auto u = hold(ipv4::kProtoUdp, 5000);
    ASSERT_EQ(u.status, Status::held);
    const Endpoint ue{u.ext_addr, u.ext_port};
    EXPECT_EQ(sent(udp_out(5000, t().server2, 53)), ue);  // the subscriber's own, to server2
    h.outside().inject(udp_in(t().server1, 7001, ue));    // from outside, server1
    h.outside().inject(udp_in(t().server2, 7002, ue));    // from outside, server2
    h.poll(2);
    ASSERT_EQ(h.inside().drain().size(), 2u);
    ASSERT_EQ(nat().session_count(), 3u);

    // A refresh with FILTER server1: server2's session from outside ends, the others stay.
    ASSERT_EQ(hold_filtered(ipv4::kProtoUdp, 5000, {dp::PeerFilter::prefix(t().server1.value, 32, 0)})
                  .status,
              Status::held);
    EXPECT_EQ(h.counter(Counter::sessions_filtered_out), 1u);
    EXPECT_EQ(nat().session_count(), 2u);
    h.outside().inject(udp_in(t().server2, 7002, ue));  // its session is gone: filtered now
    h.outside().inject(udp_in(t().server1, 7001, ue));
    h.outside().inject(udp_in(t().server2, 53, ue));    // the subscriber's own flow
    h.poll(2);
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 2u);
    EXPECT_EQ(in[0], udp_delivered(t().server1, 7001, 5000));
    EXPECT_EQ(in[1], udp_delivered(t().server2, 53, 5000));
    EXPECT_EQ(h.counter(Counter::drop_out2in_filtered), 1u);

    // No filters (§13.3's prefix length 0 removed them all at the server): anyone again.
    ASSERT_EQ(hold(ipv4::kProtoUdp, 5000).status, Status::held);
    EXPECT_EQ(nat().filtered_mapping_count(), 0u);
    h.outside().inject(udp_in(t().server2, 7002, ue));
    h.poll(2);
    EXPECT_EQ(h.inside().drain().size(), 1u);

    // Released, the mapping gives its set back.
    ASSERT_EQ(hold_filtered(ipv4::kProtoUdp, 5000, {dp::PeerFilter::prefix(t().server1.value, 32, 0)})
                  .status,
              Status::held);
    EXPECT_EQ(nat().filtered_mapping_count(), 1u);
    EXPECT_TRUE(nat().release_held_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5000, now()));
    EXPECT_EQ(nat().filtered_mapping_count(), 0u);
    expect_balanced();
}

// Without the free-set check before the mapping is made, the third filtered hold would make
// a mapping it then cannot filter (mapping_count 3 after a refusal).
TEST_F(PcpMappings, FilterSetsAreBoundedAndARefusalChangesNothing) {
    h.settings().nat.max_filtered_mappings = 2;
    start();
    const std::vector<dp::PeerFilter> f{dp::PeerFilter::prefix(t().server1.value, 32, 0)};
    ASSERT_EQ(hold_filtered(ipv4::kProtoUdp, 5000, f).status, Status::held);
    ASSERT_EQ(hold_filtered(ipv4::kProtoUdp, 5001, f).status, Status::held);
    EXPECT_EQ(hold_filtered(ipv4::kProtoUdp, 5002, f).status, Status::no_resources);
    EXPECT_EQ(nat().mapping_count(), 2u);
    EXPECT_FALSE(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5002));
    // Without filters it needs no set.
    ASSERT_EQ(hold(ipv4::kProtoUdp, 5002).status, Status::held);
    // ... and cannot be given one while none is free: it stays held, unfiltered.
    EXPECT_EQ(hold_filtered(ipv4::kProtoUdp, 5002, f).status, Status::no_resources);
    EXPECT_EQ(nat().filtered_mapping_count(), 2u);
    EXPECT_EQ(nat().held_mapping_count(), 3u);
    // One given back: the next filtered hold gets it.
    EXPECT_TRUE(nat().release_held_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5000, now()));
    EXPECT_EQ(hold_filtered(ipv4::kProtoUdp, 5002, f).status, Status::held);
    EXPECT_EQ(nat().filtered_mapping_count(), 2u);
    expect_balanced();
}

// ---- PORT_SET (RFC 7753) -----------------------------------------------------------------

// Without hold_port_set the set is one port (held_ports, find_mapping of 5001.. empty) and
// the datagrams to the other external ports are dropped (no mapping).
TEST_F(PcpMappings, APortSetIsHeldOnConsecutivePortsOfOneBlockAndReachesEachInternalPort) {
    h.settings().nat.filtering = FilteringMode::address_and_port_dependent;
    start();
    const auto r = hold_set(ipv4::kProtoUdp, 5000, 4);
    ASSERT_EQ(r.status, Status::held);
    ASSERT_EQ(r.held_ports, 4u);
    EXPECT_TRUE(t().pool.contains(addr(r.ext_addr)));
    EXPECT_EQ(nat().held_mapping_count(), 4u);
    EXPECT_EQ(nat().mapping_count(), 4u);
    EXPECT_EQ(nat().subscriber_blocks(t().subscriber1.value).size(), 1u);
    for (uint16_t i = 0; i < 4; ++i) {
        const auto ext = static_cast<uint16_t>(r.ext_port + i);
        EXPECT_EQ(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5000 + i),
                  Endpoint(r.ext_addr, ext));
        EXPECT_EQ(block_of(ext), block_of(r.ext_port)) << "one block: one worker's traffic";
    }
    // Unsolicited datagrams from outside to each external port of the set, in one burst:
    // each reaches its own internal port (endpoint-independent filtering for MAP, §11.3).
    std::vector<Frame> expected;
    for (uint16_t i = 0; i < 4; ++i) {
        const auto sport = static_cast<uint16_t>(7000 + i);
        h.outside().inject(
            udp_in(t().server2, sport, {r.ext_addr, static_cast<uint16_t>(r.ext_port + i)}));
        expected.push_back(udp_delivered(t().server2, sport, static_cast<uint16_t>(5000 + i)));
    }
    h.poll(2);
    EXPECT_EQ(h.inside().drain(), expected);
    EXPECT_EQ(h.counter(Counter::sessions_created_inbound), 4u);
    EXPECT_EQ(h.counter(Counter::drop_out2in_filtered), 0u);
    // The subscriber's own traffic from a port of the set leaves from its place in the set.
    EXPECT_EQ(sent(udp_out(5002, t().server1, 53)),
              Endpoint(r.ext_addr, static_cast<uint16_t>(r.ext_port + 2)));
    // Asked again (a refresh): the same set, nothing more made.
    const auto again = hold_set(ipv4::kProtoUdp, 5000, 4);
    EXPECT_EQ(again.status, Status::held);
    EXPECT_EQ(again.ext_port, r.ext_port);
    EXPECT_EQ(again.held_ports, 4u);
    EXPECT_EQ(nat().mapping_count(), 4u);
    // Given back as one: all four unheld.
    EXPECT_EQ(nat().release_held_port_set(ipv4::kProtoUdp, t().subscriber1.value, 5000, 4, now()),
              4u);
    EXPECT_EQ(nat().held_mapping_count(), 0u);
    expect_balanced();
}

// Blocks of 16 ports; the subscriber holds two adjacent ones, b and b + 1, with only the last
// 3 ports of b and the first 3 of b + 1 free: 6 consecutive free ports across the boundary.
// Without the run kept inside one block, the set of 8 gets those 6 (held_ports 6, its ports in
// two blocks, so two workers' traffic); without the choice of a new block when its run is
// longer, the last set gets 0 ports or fewer than 8.
TEST_F(PcpMappings, APortSetIsNeverSplitAcrossBlocksAndIsSmallerWhereTheBlockEnds) {
    one_address_pool();
    h.settings().nat.port_block_size = 16;
    h.settings().nat.limits.max_blocks = 2;
    start();
    const uint32_t b = 6;
    const uint16_t first = h.blocks().first_port(b);
    const uint16_t last = h.blocks().last_port(b + 1);
    ASSERT_EQ(h.blocks().first_port(b + 1), h.blocks().last_port(b) + 1);
    uint16_t internal = 100;
    for (uint32_t p = first; p <= last; ++p) {
        if (p + 3 > h.blocks().last_port(b) && p < h.blocks().first_port(b + 1) + 3u) continue;
        ASSERT_EQ(hold(ipv4::kProtoUdp, internal++, 0, static_cast<uint16_t>(p), true).status,
                  Status::held);
    }
    ASSERT_EQ(nat().subscriber_blocks(t().subscriber1.value).size(), 2u);
    const uint32_t mappings = nat().mapping_count();
    auto r = hold_set(ipv4::kProtoUdp, 5000, 8);
    ASSERT_EQ(r.status, Status::held);
    EXPECT_EQ(r.held_ports, 3u) << "RFC 7753: a smaller set, within one block";
    EXPECT_EQ(block_of(r.ext_port), block_of(static_cast<uint16_t>(r.ext_port + 2)));
    EXPECT_EQ(nat().mapping_count(), mappings + 3);
    // The other 3: a second set of 3.
    r = hold_set(ipv4::kProtoUdp, 5100, 8);
    ASSERT_EQ(r.status, Status::held);
    EXPECT_EQ(r.held_ports, 3u);
    EXPECT_EQ(block_of(r.ext_port), block_of(static_cast<uint16_t>(r.ext_port + 2)));
    // Both blocks full, the block quota reached: no port at all is USER_EX_QUOTA, nothing made.
    EXPECT_EQ(hold_set(ipv4::kProtoUdp, 6000, 8).status, Status::user_ex_quota);
    EXPECT_EQ(nat().mapping_count(), mappings + 6);
    EXPECT_EQ(h.blocks().holder(0, b + 2), BlockMap::kFree);
    // One more block allowed: the set goes whole into a new block.
    auto limits = h.settings().nat.limits;
    limits.max_blocks = 3;
    nat().set_limits(limits);
    r = hold_set(ipv4::kProtoUdp, 6000, 8);
    ASSERT_EQ(r.status, Status::held);
    EXPECT_EQ(r.held_ports, 8u);
    EXPECT_NE(block_of(r.ext_port), b);
    EXPECT_NE(block_of(r.ext_port), b + 1);
    EXPECT_EQ(block_of(static_cast<uint16_t>(r.ext_port + 7)), block_of(r.ext_port));
    EXPECT_EQ(nat().subscriber_blocks(t().subscriber1.value).size(), 3u);
    // Each port of it reaches its internal port.
    h.outside().inject(
        udp_in(t().server1, 9000, {r.ext_addr, static_cast<uint16_t>(r.ext_port + 7)}));
    h.poll(2);
    auto in = h.inside().drain();
    ASSERT_EQ(in.size(), 1u);
    EXPECT_EQ(in[0], udp_delivered(t().server1, 9000, 6007));
    expect_balanced();
}

// Without the first port's mapping starting the set, the set gets other ports; without the
// stop before a mapped internal port, 5002's dynamic mapping would be taken over or the hold
// fail; without the parity, the odd internal port gets an even external one.
TEST_F(PcpMappings, APortSetStartsAtAnExistingMappingStopsBeforeAnotherAndKeepsParity) {
    start();
    const Endpoint dynamic = sent(udp_out(5000, t().server1, 53));
    const Endpoint other = sent(udp_out(5003, t().server1, 53));
    auto r = hold_set(ipv4::kProtoUdp, 5000, 8);
    ASSERT_EQ(r.status, Status::held);
    EXPECT_EQ(Endpoint(r.ext_addr, r.ext_port), dynamic) << "§11.3: its mapping is the answer";
    // It follows the mapping's port while the ports are free, in its block, and up to 5003.
    const uint32_t block_last = h.blocks().last_port(block_of(dynamic.second));
    uint32_t expected = 1;
    while (expected < 3 && dynamic.second + expected <= block_last &&
           dynamic.second + expected != other.second)
        ++expected;
    EXPECT_EQ(r.held_ports, expected);
    EXPECT_EQ(h.find_mapping(ipv4::kProtoUdp, t().subscriber1.value, 5003), other)
        << "a mapped internal port ends the set before it";
    EXPECT_EQ(nat().held_mapping_count(), r.held_ports);

    // RFC 7753 §4's P bit: an odd first internal port, an odd first external port.
    r = hold_set(ipv4::kProtoTcp, 7001, 4, true);
    ASSERT_EQ(r.status, Status::held);
    EXPECT_EQ(r.ext_port & 1, 1);
    EXPECT_EQ(r.held_ports, 4u);
    // A suggestion where the set fits whole is taken, in a free block claimed for it.
    const uint32_t free_block = (block_of(r.ext_port) + 3) % h.blocks().blocks_per_address();
    ASSERT_EQ(h.blocks().holder(0, free_block), BlockMap::kFree);
    const auto wanted = static_cast<uint16_t>(h.blocks().first_port(free_block) + 10);
    r = hold_set(ipv4::kProtoUdp, 8000, 3, false, wanted, true);
    ASSERT_EQ(r.status, Status::held);
    EXPECT_EQ(r.ext_port, wanted);
    EXPECT_EQ(r.held_ports, 3u);
    EXPECT_EQ(h.blocks().holder(0, free_block), BlockMap::worker_holder(0));
    expect_balanced();
}

// A refused set makes nothing: no mapping, no subscriber, no block, no frame counted. Without
// the quota check, the first refusal grants ports past max_ports; without the filter-set room
// check, the filtered set makes a mapping it cannot filter; without the exact check, the
// suggestion taken by sub2 gives sub1 another port.
TEST_F(PcpMappings, APortSetRefusalChangesNothing) {
    one_address_pool();
    h.settings().nat.limits.max_ports_per_protocol[0] = 2;  // UDP
    h.settings().nat.max_filtered_mappings = 1;
    start(true);
    ASSERT_EQ(hold_set(ipv4::kProtoUdp, 5000, 2).status, Status::held);
    h.take_events();
    const uint32_t mappings = nat().mapping_count();
    const uint32_t blocks = nat().held_blocks();
    EXPECT_EQ(hold_set(ipv4::kProtoUdp, 6000, 4).status, Status::user_ex_quota);
    auto ev = h.take_events();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].kind, NatEvent::Kind::quota_exceeded);
    EXPECT_EQ(ev[0].limit, NatEvent::Limit::ports);
    // Filter sets: one free, two asked with filters: a set of one.
    const std::vector<dp::PeerFilter> f{dp::PeerFilter::prefix(t().server1.value, 32, 0)};
    auto r = hold_set(ipv4::kProtoTcp, 6000, 2, false, 0, false, t().subscriber1, f);
    ASSERT_EQ(r.status, Status::held);
    EXPECT_EQ(r.held_ports, 1u);
    EXPECT_EQ(nat().filtered_mapping_count(), 1u);
    EXPECT_EQ(hold_set(ipv4::kProtoTcp, 7000, 2, false, 0, false, t().subscriber1, f).status,
              Status::no_resources);
    EXPECT_FALSE(h.find_mapping(ipv4::kProtoTcp, t().subscriber1.value, 7000));
    // An exact suggestion another subscriber has: cannot_provide_external, and sub2 is not
    // left paired.
    const Endpoint sub1_port(r.ext_addr, r.ext_port);
    const uint32_t subscribers = nat().subscriber_count();
    EXPECT_EQ(
        hold_set(ipv4::kProtoUdp, 5000, 2, false, sub1_port.second, true, t().subscriber2).status,
        Status::cannot_provide_external);
    EXPECT_EQ(nat().subscriber_count(), subscribers);
    EXPECT_FALSE(h.find_mapping(ipv4::kProtoUdp, t().subscriber2.value, 5000));
    // An operator's mapping of the first port: not PCP's.
    h.controller().add_static(
        *common::StaticMapping::parse("udp 100.64.0.12:40000 198.51.100.1:80"));
    EXPECT_EQ(hold_set(ipv4::kProtoUdp, 40000, 2, false, 0, false, t().subscriber2).status,
              Status::not_authorized);
    EXPECT_EQ(nat().mapping_count(), mappings + 1);
    EXPECT_EQ(nat().held_blocks(), blocks);
    EXPECT_EQ(h.counter(Counter::drop_quota_ports), 0u) << "a request is not a frame";
    expect_balanced();
}

}  // namespace
}  // namespace cgn::test
