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
//   - PEER creates the flow as the subscriber's first packet would (§12).
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

}  // namespace
}  // namespace cgn::test
