// A differential oracle (issue 9 item 9): packet cases as data - a description, the input
// frames (built with the PacketBuilder), the frames expected out and on which side, the counter
// the case moves - run twice through the real worker:
//   1. frame by frame: one frame per poll; each case's output and counter checked against the
//      table;
//   2. as random mixed bursts: every case's frames interleaved across both sides (a case's own
//      frames keep their order: fragments of one datagram are order dependent), many frames
//      per poll, several seeds; each frame out is attributed to the case that expects it, and
//      each case must get exactly its frames, in its order; the counters must equal those of
//      the frame-by-frame run.
// The cases cover both directions of UDP, TCP and ICMP echo, each filtering outcome
// (address-dependent filtering), ICMP errors both ways, hairpinning, TTL expiry, ARP, packets
// for cgnd itself, exempt destinations, the outside link's MTU, fragments in and out of order,
// and malformed frames per drop reason. Every output frame of a case is unique (each case has
// its own IP ID), which is what lets the burst run attribute it.
//
// State: new mappings take random external ports, so they are all opened by a fixed prelude,
// frame by frame, before the cases (which only use them); no two cases create the same session,
// so every case's result is independent of the order the cases run in.

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/byte_order.hpp"
#include "common/checksum.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "common/random.hpp"
#include "tests/dataplane/harness.hpp"
#include "tests/dataplane/mixed_traffic.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::Ipv4Address;
using common::MacAddress;
using common::PacketBuilder;
namespace ipv4 = common::ipv4;
namespace icmp = common::icmp;
namespace tcp = common::tcp;

enum class Side : uint8_t { inside = 0, outside = 1 };

struct Output {
    Side side;
    Frame frame;
};

struct Case {
    std::string description;
    Side side;                    // where every input frame arrives
    std::vector<Frame> inputs;    // in this order (the fragments of one datagram)
    std::vector<Output> outputs;  // in this order per side
    Counter counter;              // moves by `count` (a drop reason, or what the case is)
    uint64_t count = 1;
    // The burst run compares the case's frames in any order: a held fragment is replayed at
    // the end of the burst that brought its first fragment, so a later fragment in that burst
    // overtakes it (RFC 4787 REQ-14 asks for fragments to be handled in any order, not for
    // their order to be kept).
    bool any_order_in_bursts = false;
};

struct Endpoint {
    Ipv4Address addr;
    uint16_t port;
};

// The external endpoints the prelude opened.
struct Mappings {
    Endpoint udp1;   // subscriber 1 UDP 40000 (talked to server 1 port 53, and to udp2)
    Endpoint tcp1;   // subscriber 1 TCP 40001 (established with server 1 port 80)
    Endpoint icmp1;  // subscriber 1 echo identifier 7 (to server 1)
    Endpoint udp2;   // subscriber 2 UDP 41000 (talked to server 2 port 53)
    bool operator==(const Mappings& o) const {
        auto same = [](const Endpoint& a, const Endpoint& b) {
            return a.addr == b.addr && a.port == b.port;
        };
        return same(udp1, o.udp1) && same(tcp1, o.tcp1) && same(icmp1, o.icmp1) &&
               same(udp2, o.udp2);
    }
};

constexpr uint64_t kNatSeed = 7;
const auto kExempt = *common::Ipv4Prefix::parse("203.0.113.128/25");
const auto kExemptHost = *Ipv4Address::parse("203.0.113.200");

void configure(DataplaneHarness& h) {
    h.settings().seed = kNatSeed;  // the same external ports in every run
    h.settings().nat.filtering = common::FilteringMode::address_dependent;
    h.settings().outside.mtu = 1280;
    h.settings().exempt_destinations = {kExempt};
    h.start();
    h.resolve_neighbors();
}

Endpoint mapping_of(DataplaneHarness& h, uint8_t protocol, Ipv4Address addr, uint16_t port) {
    const auto m = h.find_mapping(protocol, addr.value, port);
    if (!m) throw std::runtime_error("prelude mapping missing");
    return {Ipv4Address{m->first}, m->second};
}

// Opens the mappings the cases use, frame by frame, always in this order.
Mappings prelude(DataplaneHarness& h) {
    const Topology& t = h.topo();
    auto from_inside = [&](const Frame& f) {
        h.inside().inject(f);
        h.poll();
    };
    auto in_frame = [&](MacAddress mac, Ipv4Address src, Ipv4Address dst) {
        PacketBuilder b;
        b.ethernet(mac, h.inside().mac()).ipv4(src, dst, 64, 1);
        return b;
    };
    from_inside(in_frame(t.subscriber1_mac, t.subscriber1, t.server1).udp(40000, 53).build());
    from_inside(in_frame(t.subscriber1_mac, t.subscriber1, t.server1)
                    .tcp(40001, 80, tcp::kSyn, 1000)
                    .build());
    Mappings m;
    m.tcp1 = mapping_of(h, ipv4::kProtoTcp, t.subscriber1, 40001);
    h.outside().inject(PacketBuilder()
                           .ethernet(t.gateway_mac, h.outside().mac())
                           .ipv4(t.server1, m.tcp1.addr, 64, 1)
                           .tcp(80, m.tcp1.port, tcp::kSyn | tcp::kAck_, 5000, 1001)
                           .build());
    h.poll();
    from_inside(in_frame(t.subscriber1_mac, t.subscriber1, t.server1)
                    .tcp(40001, 80, tcp::kAck_, 1001, 5001)
                    .build());
    from_inside(in_frame(t.subscriber1_mac, t.subscriber1, t.server1)
                    .icmp_echo(icmp::kEchoRequest, 7, 1)
                    .build());
    from_inside(in_frame(t.subscriber2_mac, t.subscriber2, t.server2).udp(41000, 53).build());
    m.udp1 = mapping_of(h, ipv4::kProtoUdp, t.subscriber1, 40000);
    m.icmp1 = mapping_of(h, ipv4::kProtoIcmp, t.subscriber1, 7);
    m.udp2 = mapping_of(h, ipv4::kProtoUdp, t.subscriber2, 41000);
    // Subscriber 1 sends to subscriber 2's external endpoint (hairpinned; refused there, as
    // subscriber 2 never sent to it): from now on subscriber 2 may reach subscriber 1 by its
    // external endpoint under address-dependent filtering.
    from_inside(
        in_frame(t.subscriber1_mac, t.subscriber1, m.udp2.addr).udp(40000, m.udp2.port).build());
    h.poll(2);
    h.inside().drain();
    h.outside().drain();
    return m;
}

Frame with_ip_checksum(Frame f) {
    const size_t ihl = (f[14] & 0x0f) * 4u;
    common::store_be16(&f[14 + ipv4::kChecksum], 0);
    common::store_be16(&f[14 + ipv4::kChecksum],
                       common::checksum_finish(common::checksum_partial(&f[14], ihl)));
    return f;
}

// The ICMP error cgnd sends about `offending` (RFC 792: its IP header and 8 bytes), from `from`
// at `our_mac` to the sender's MAC.
Frame icmp_error_about(const Frame& offending, MacAddress our_mac, Ipv4Address from, uint8_t type,
                       uint8_t code, uint32_t rest) {
    const size_t ihl = (offending[14] & 0x0f) * 4u;
    MacAddress sender;
    std::copy(offending.begin() + 6, offending.begin() + 12, sender.bytes.begin());
    const std::vector<uint8_t> quote(offending.begin() + 14,
                                     offending.begin() + static_cast<long>(14 + ihl + 8));
    return PacketBuilder()
        .ethernet(our_mac, sender)
        .ipv4(from, Ipv4Address{common::load_be32(&offending[14 + ipv4::kSrc])}, 64, 0)
        .icmp(type, code, rest)
        .payload(quote)
        .build();
}

std::vector<Case> make_cases(DataplaneHarness& h, const Mappings& m) {
    const Topology& t = h.topo();
    const MacAddress in_mac = h.inside().mac();
    const MacAddress out_mac = h.outside().mac();
    std::vector<Case> cases;
    uint16_t next_id = 100;
    // Builders: a frame a subscriber sends, one from the gateway, and the frames expected out.
    auto sub1 = [&](Ipv4Address dst, uint16_t id, uint8_t ttl = 64) {
        PacketBuilder b;
        b.ethernet(t.subscriber1_mac, in_mac).ipv4(t.subscriber1, dst, ttl, id);
        return b;
    };
    auto sub2 = [&](Ipv4Address dst, uint16_t id) {
        PacketBuilder b;
        b.ethernet(t.subscriber2_mac, in_mac).ipv4(t.subscriber2, dst, 64, id);
        return b;
    };
    auto from_gw = [&](Ipv4Address src, Ipv4Address dst, uint16_t id, uint8_t ttl = 64) {
        PacketBuilder b;
        b.ethernet(t.gateway_mac, out_mac).ipv4(src, dst, ttl, id);
        return b;
    };
    auto to_gw = [&](Ipv4Address src, Ipv4Address dst, uint16_t id, uint8_t ttl = 63) {
        PacketBuilder b;
        b.ethernet(out_mac, t.gateway_mac).ipv4(src, dst, ttl, id);
        return b;
    };
    auto to_sub1 = [&](Ipv4Address src, uint16_t id, uint8_t ttl = 63) {
        PacketBuilder b;
        b.ethernet(in_mac, t.subscriber1_mac).ipv4(src, t.subscriber1, ttl, id);
        return b;
    };
    auto add = [&](std::string description, Side side, std::vector<Frame> inputs,
                   std::vector<Output> outputs, Counter counter, uint64_t count = 1) {
        cases.push_back(
            {std::move(description), side, std::move(inputs), std::move(outputs), counter, count});
    };
    auto drop_in = [&](std::string description, Frame f, Counter c) {
        add(std::move(description), Side::inside, {std::move(f)}, {}, c);
    };
    auto drop_out = [&](std::string description, Frame f, Counter c) {
        add(std::move(description), Side::outside, {std::move(f)}, {}, c);
    };
    const Side I = Side::inside;
    const Side O = Side::outside;
    uint16_t id = 0;

    // ---- inside to outside -------------------------------------------------------------
    id = next_id++;
    add("in2out UDP on an established session", I,
        {sub1(t.server1, id).udp(40000, 53).payload("hello").build()},
        {{O, to_gw(m.udp1.addr, t.server1, id).udp(m.udp1.port, 53).payload("hello").build()}},
        Counter::in2out_translated);
    id = next_id++;
    add("in2out UDP, a new session on an existing mapping keeps the external port (REQ-1)", I,
        {sub1(t.server1, id).udp(40000, 54).payload("other port").build()},
        {{O, to_gw(m.udp1.addr, t.server1, id).udp(m.udp1.port, 54).payload("other port").build()}},
        Counter::sessions_created);
    id = next_id++;
    add("in2out UDP without a checksum keeps checksum 0", I,
        {sub1(t.server1, id).udp(40000, 53).udp_without_checksum().payload("nocsum").build()},
        {{O, to_gw(m.udp1.addr, t.server1, id)
                 .udp(m.udp1.port, 53)
                 .udp_without_checksum()
                 .payload("nocsum")
                 .build()}},
        Counter::in2out_translated);
    id = next_id++;
    add("in2out UDP with IP options", I,
        {sub1(t.server1, id).ipv4_options({1, 1, 1, 0}).udp(40000, 53).payload("opt").build()},
        {{O, to_gw(m.udp1.addr, t.server1, id)
                 .ipv4_options({1, 1, 1, 0})
                 .udp(m.udp1.port, 53)
                 .payload("opt")
                 .build()}},
        Counter::in2out_translated);
    id = next_id++;
    add("in2out UDP with TTL 2 leaves with TTL 1", I,
        {sub1(t.server1, id, 2).udp(40000, 53).payload("ttl2").build()},
        {{O, to_gw(m.udp1.addr, t.server1, id, 1).udp(m.udp1.port, 53).payload("ttl2").build()}},
        Counter::in2out_translated);
    id = next_id++;
    add("in2out TCP ACK on an established connection", I,
        {sub1(t.server1, id).tcp(40001, 80, tcp::kAck_, 1001, 5001).build()},
        {{O,
          to_gw(m.tcp1.addr, t.server1, id).tcp(m.tcp1.port, 80, tcp::kAck_, 1001, 5001).build()}},
        Counter::in2out_translated);
    id = next_id++;
    add("in2out TCP data", I,
        {sub1(t.server1, id)
             .tcp(40001, 80, tcp::kPsh | tcp::kAck_, 1001, 5001)
             .payload("GET /")
             .build()},
        {{O, to_gw(m.tcp1.addr, t.server1, id)
                 .tcp(m.tcp1.port, 80, tcp::kPsh | tcp::kAck_, 1001, 5001)
                 .payload("GET /")
                 .build()}},
        Counter::in2out_translated);
    id = next_id++;
    add("in2out ICMP echo request on its query mapping", I,
        {sub1(t.server1, id).icmp_echo(icmp::kEchoRequest, 7, 2).payload("ping").build()},
        {{O, to_gw(m.icmp1.addr, t.server1, id)
                 .icmp_echo(icmp::kEchoRequest, m.icmp1.port, 2)
                 .payload("ping")
                 .build()}},
        Counter::in2out_translated);
    id = next_id++;
    add("in2out to an exempt destination is routed untranslated (RFC 6888 REQ-6)", I,
        {sub1(kExemptHost, id).udp(40005, 53).payload("exempt").build()},
        {{O, to_gw(t.subscriber1, kExemptHost, id).udp(40005, 53).payload("exempt").build()}},
        Counter::forwarded_untranslated);
    id = next_id++;
    add("hairpin: subscriber 2 to subscriber 1's external endpoint (RFC 4787 REQ-9)", I,
        {sub2(m.udp1.addr, id).udp(41000, m.udp1.port).payload("hairpin").build()},
        {{I, to_sub1(m.udp2.addr, id).udp(m.udp2.port, 40000).payload("hairpin").build()}},
        Counter::hairpinned);
    {
        id = next_id++;
        const Frame in = sub1(t.server1, id, 1).udp(40000, 53).payload("ttl1").build();
        add("in2out TTL 1: time exceeded to the subscriber (RFC 1812 §5.3.1)", I, {in},
            {{I, icmp_error_about(in, in_mac, t.inside.address, icmp::kTimeExceeded,
                                  icmp::kCodeTtlExceeded, 0)}},
            Counter::drop_ttl_exceeded);
    }
    {
        id = next_id++;
        const std::string big(1400, 'D');
        const Frame in = sub1(t.server1, id)
                             .ipv4_fragment(ipv4::kFlagDontFragment)
                             .udp(40000, 53)
                             .payload(big)
                             .build();
        add("in2out DF and too big for the outside link: fragmentation needed (REQ-13)", I, {in},
            {{I, icmp_error_about(in, in_mac, t.inside.address, icmp::kDestUnreachable,
                                  icmp::kCodeFragmentationNeeded, 1280)}},
            Counter::drop_too_big_df);
    }
    {
        id = next_id++;
        const std::string big(1400, 'F');
        const Frame whole =
            to_gw(m.udp1.addr, t.server1, id).udp(m.udp1.port, 53).payload(big).build();
        std::vector<Output> outs;
        for (auto& f : cut_into_fragments(whole, (1280 - 20) & ~7u, id)) outs.push_back({O, f});
        add("in2out without DF, too big: sent as fragments in order (REQ-13a)", I,
            {sub1(t.server1, id).udp(40000, 53).payload(big).build()}, outs,
            Counter::packets_fragmented);
    }
    {
        // Fragments of one datagram (RFC 4787 REQ-14), in order and out of order.
        const std::string data(40, 'g');
        id = next_id++;
        const auto pieces =
            cut_into_fragments(sub1(t.server1, id).udp(40000, 53).payload(data).build(), 16, id);
        const auto translated = cut_into_fragments(
            to_gw(m.udp1.addr, t.server1, id).udp(m.udp1.port, 53).payload(data).build(), 16, id);
        add("in2out fragments in order", I, pieces,
            {{O, translated[0]}, {O, translated[1]}, {O, translated[2]}},
            Counter::in2out_translated, 3);
        id = next_id++;
        const auto pieces2 =
            cut_into_fragments(sub1(t.server1, id).udp(40000, 53).payload(data).build(), 16, id);
        const auto translated2 = cut_into_fragments(
            to_gw(m.udp1.addr, t.server1, id).udp(m.udp1.port, 53).payload(data).build(), 16, id);
        // Last and middle wait for the first, then leave in the order they came.
        add("in2out fragments out of order: last, middle, first", I,
            {pieces2[2], pieces2[1], pieces2[0]},
            {{O, translated2[0]}, {O, translated2[2]}, {O, translated2[1]}},
            Counter::fragments_held, 2);
        id = next_id++;
        const auto pieces3 =
            cut_into_fragments(sub1(t.server1, id).udp(40000, 53).payload(data).build(), 16, id);
        add("in2out a later fragment whose first never comes is held (then times out)", I,
            {pieces3[1]}, {}, Counter::fragments_held);
    }
    {
        // The subscriber answers an inbound datagram with port unreachable (RFC 5508 §4).
        id = next_id++;
        const Frame quoted = PacketBuilder()
                                 .ipv4(t.server1, t.subscriber1, 62, 9)
                                 .udp(53, 40000)
                                 .payload("data")
                                 .build();
        const Frame quoted_out = PacketBuilder()
                                     .ipv4(t.server1, m.udp1.addr, 62, 9)
                                     .udp(53, m.udp1.port)
                                     .payload("data")
                                     .build();
        add("in2out ICMP port unreachable about a session, quote translated", I,
            {sub1(t.server1, id).icmp(icmp::kDestUnreachable, 3, 0).payload(quoted).build()},
            {{O, to_gw(m.udp1.addr, t.server1, id)
                     .icmp(icmp::kDestUnreachable, 3, 0)
                     .payload(quoted_out)
                     .build()}},
            Counter::icmp_errors_translated);
        id = next_id++;
        const Frame unknown = PacketBuilder()
                                  .ipv4(t.server2, t.subscriber1, 62, 9)
                                  .udp(53, 49999)
                                  .payload("data")
                                  .build();
        drop_in("in2out ICMP error about no session",
                sub1(t.server2, id).icmp(icmp::kDestUnreachable, 3, 0).payload(unknown).build(),
                Counter::drop_icmp_error_no_session);
        id = next_id++;
        drop_in(
            "in2out ICMP error quoting too little",
            sub1(t.server1, id).icmp(icmp::kDestUnreachable, 3, 0).payload("short quote").build(),
            Counter::drop_icmp_error_malformed);
        id = next_id++;
        Frame bad = sub1(t.server1, id).icmp(icmp::kDestUnreachable, 3, 0).payload(quoted).build();
        bad[14 + 20 + icmp::kChecksum] ^= 0x5a;
        drop_in("in2out ICMP error with a bad checksum (RFC 5508 REQ-3)", bad,
                Counter::drop_icmp_error_malformed);
        id = next_id++;
        drop_in("in2out fragmented ICMP error",
                sub1(t.server1, id)
                    .ipv4_fragment(ipv4::kFlagMoreFragments)
                    .icmp(icmp::kDestUnreachable, 3, 0)
                    .payload(quoted)
                    .build(),
                Counter::drop_ipv4_fragment);
    }
    // ---- for cgnd itself, and what is refused from inside ----------------------------------
    id = next_id++;
    add("echo request to cgnd's inside address is answered", I,
        {sub1(t.inside.address, id).icmp_echo(icmp::kEchoRequest, 99, 1).payload("gw?").build()},
        {{I, PacketBuilder()
                 .ethernet(in_mac, t.subscriber1_mac)
                 .ipv4(t.inside.address, t.subscriber1, 64, id)
                 .icmp_echo(icmp::kEchoReply, 99, 1)
                 .payload("gw?")
                 .build()}},
        Counter::icmp_echo_answered);
    id = next_id++;
    drop_in("UDP to cgnd's inside address",
            sub1(t.inside.address, id).udp(5351, 5351).payload("x").build(), Counter::drop_for_us);
    id = next_id++;
    drop_in("to another inside host through us",
            sub1(Topology::ip("100.64.0.50"), id).udp(1, 2).build(), Counter::drop_ipv4_martian);
    id = next_id++;
    drop_in("to a loopback address", sub1(Topology::ip("127.0.0.1"), id).udp(1, 2).build(),
            Counter::drop_ipv4_martian);
    id = next_id++;
    drop_in("GRE is not translated", sub1(t.server1, id).raw(47).payload("gre").build(),
            Counter::drop_protocol);
    id = next_id++;
    drop_in("ICMP timestamp is not translated", sub1(t.server1, id).icmp(13, 0, 0x01230000).build(),
            Counter::drop_icmp_type);
    // ---- malformed frames, one per drop reason ------------------------------------------------
    drop_in("runt frame", Frame(10, 0xab), Counter::drop_runt);
    {
        id = next_id++;
        Frame f = sub1(t.server1, id).udp(40000, 53).payload("v6?").build();
        f[14] = 0x65;
        drop_in("IP version 6 in an IPv4 frame", with_ip_checksum(f), Counter::drop_ipv4_version);
        id = next_id++;
        f = sub1(t.server1, id).udp(40000, 53).payload("ihl").build();
        f[14] = 0x44;
        drop_in("IHL 4", f, Counter::drop_ipv4_header_length);
        id = next_id++;
        f = sub1(t.server1, id).udp(40000, 53).payload("len").build();
        common::store_be16(&f[14 + ipv4::kTotalLength], 400);
        drop_in("total length beyond the frame", with_ip_checksum(f),
                Counter::drop_ipv4_total_length);
        id = next_id++;
        f = sub1(t.server1, id).udp(40000, 53).payload("csum").build();
        f[14 + ipv4::kChecksum] ^= 0xff;
        drop_in("IP header checksum wrong", f, Counter::drop_ipv4_checksum);
        id = next_id++;
        drop_in("UDP header truncated",
                sub1(t.server1, id).raw(ipv4::kProtoUdp).payload("abc").build(),
                Counter::drop_l4_truncated);
        id = next_id++;
        drop_in("TCP header truncated",
                sub1(t.server1, id).raw(ipv4::kProtoTcp).payload("0123456789").build(),
                Counter::drop_l4_truncated);
        id = next_id++;
        f = sub1(t.server1, id).udp(40000, 53).payload("v6").build();
        common::store_be16(&f[12], common::eth::kTypeIpv6);
        drop_in("IPv6 ethertype", f, Counter::drop_ethertype);
        id = next_id++;
        drop_in("unicast to another MAC",
                PacketBuilder()
                    .ethernet(t.subscriber1_mac, *MacAddress::parse("02:00:00:00:99:99"))
                    .ipv4(t.subscriber1, t.server1, 64, id)
                    .udp(40000, 53)
                    .build(),
                Counter::drop_not_for_us_l2);
        id = next_id++;
        drop_in("IPv4 to the broadcast MAC",
                PacketBuilder()
                    .ethernet(t.subscriber1_mac, MacAddress::broadcast())
                    .ipv4(t.subscriber1, t.server1, 64, id)
                    .udp(40000, 53)
                    .build(),
                Counter::drop_not_for_us_l2);
    }
    // ---- ARP (RFC 826) ----------------------------------------------------------------------
    add("ARP request for cgnd's inside address is answered", I,
        {arp_request(t.subscriber1_mac, t.subscriber1, t.inside.address)},
        {{I, arp_reply(in_mac, t.inside.address, t.subscriber1_mac, t.subscriber1)}},
        Counter::arp_requests_answered);
    // RFC 826 "merge": a known sender is refreshed whatever it asks; an unknown one asking for
    // another host teaches nothing.
    add("ARP request for another host from a known subscriber: refreshed, consumed", I,
        {arp_request(t.subscriber1_mac, t.subscriber1, Topology::ip("100.64.0.99"))}, {},
        Counter::arp_consumed);
    drop_in("ARP request for another inside host from an unknown one",
            arp_request(*MacAddress::parse("02:00:00:00:00:77"), Topology::ip("100.64.0.77"),
                        Topology::ip("100.64.0.99")),
            Counter::drop_arp_not_for_us);
    {
        Frame f = arp_request(t.subscriber2_mac, t.subscriber2, t.inside.address);
        f[14 + common::arp::kHardwareLength] = 7;
        drop_in("ARP with a hardware length of 7", f, Counter::drop_arp_malformed);
    }
    add("ARP reply from a known subscriber refreshes it and is consumed", I,
        {arp_reply(t.subscriber2_mac, t.subscriber2, in_mac, t.inside.address)}, {},
        Counter::arp_consumed);
    add("ARP request for a pool address on the outside is answered", O,
        {arp_request(t.gateway_mac, t.gateway, m.udp1.addr)},
        {{O, arp_reply(out_mac, m.udp1.addr, t.gateway_mac, t.gateway)}},
        Counter::arp_requests_answered);
    add("ARP request for cgnd's outside address is answered", O,
        {arp_request(t.gateway_mac, t.gateway, t.outside.address)},
        {{O, arp_reply(out_mac, t.outside.address, t.gateway_mac, t.gateway)}},
        Counter::arp_requests_answered);
    drop_out("ARP request for another outside host from an unknown one",
             arp_request(*MacAddress::parse("02:00:00:00:fe:66"), Topology::ip("192.0.2.66"),
                         Topology::ip("192.0.2.77")),
             Counter::drop_arp_not_for_us);

    // ---- outside to inside ----------------------------------------------------------------
    id = next_id++;
    add("out2in UDP reply on an established session", O,
        {from_gw(t.server1, m.udp1.addr, id).udp(53, m.udp1.port).payload("answer").build()},
        {{I, to_sub1(t.server1, id).udp(53, 40000).payload("answer").build()}},
        Counter::out2in_translated);
    id = next_id++;
    add("out2in UDP from another port of a contacted address: allowed (address-dependent)", O,
        {from_gw(t.server1, m.udp1.addr, id).udp(55, m.udp1.port).payload("port 55").build()},
        {{I, to_sub1(t.server1, id).udp(55, 40000).payload("port 55").build()}},
        Counter::sessions_created_inbound);
    id = next_id++;
    drop_out("out2in UDP from an address the subscriber never contacted: filtered (REQ-8)",
             from_gw(t.server2, m.udp1.addr, id).udp(53, m.udp1.port).payload("no").build(),
             Counter::drop_out2in_filtered);
    {
        // A pool address no subscriber got, and a port in no block: no mapping.
        Ipv4Address unused = t.pool.address;
        while (unused == m.udp1.addr || unused == m.udp2.addr)
            unused = Ipv4Address{unused.value + 1};
        id = next_id++;
        drop_out("out2in UDP to a port with no mapping",
                 from_gw(t.server1, unused, id).udp(53, 33333).payload("?").build(),
                 Counter::drop_out2in_no_mapping);
        id = next_id++;
        drop_out("out2in TCP SYN to a port with no mapping",
                 from_gw(t.server1, unused, id).tcp(80, 22, tcp::kSyn, 1).build(),
                 Counter::drop_out2in_no_mapping);
    }
    id = next_id++;
    add("out2in TCP ACK on an established connection", O,
        {from_gw(t.server1, m.tcp1.addr, id).tcp(80, m.tcp1.port, tcp::kAck_, 5001, 1001).build()},
        {{I, to_sub1(t.server1, id).tcp(80, 40001, tcp::kAck_, 5001, 1001).build()}},
        Counter::out2in_translated);
    id = next_id++;
    add("out2in ICMP echo reply on its query mapping", O,
        {from_gw(t.server1, m.icmp1.addr, id)
             .icmp_echo(icmp::kEchoReply, m.icmp1.port, 2)
             .payload("pong")
             .build()},
        {{I, to_sub1(t.server1, id).icmp_echo(icmp::kEchoReply, 7, 2).payload("pong").build()}},
        Counter::out2in_translated);
    id = next_id++;
    drop_out(
        "out2in ICMP echo request to a NAPT address",
        from_gw(t.server2, m.icmp1.addr, id).icmp_echo(icmp::kEchoRequest, m.icmp1.port, 3).build(),
        Counter::drop_icmp_type);
    id = next_id++;
    add("out2in from an exempt source is routed untranslated (RFC 6888 REQ-6)", O,
        {from_gw(kExemptHost, t.subscriber1, id).udp(53, 40005).payload("exempt back").build()},
        {{I, to_sub1(kExemptHost, id).udp(53, 40005).payload("exempt back").build()}},
        Counter::forwarded_untranslated);
    {
        id = next_id++;
        const Frame in =
            from_gw(t.server1, m.udp1.addr, id, 1).udp(53, m.udp1.port).payload("ttl1").build();
        add("out2in TTL 1: time exceeded to the sender", O, {in},
            {{O, icmp_error_about(in, out_mac, t.outside.address, icmp::kTimeExceeded,
                                  icmp::kCodeTtlExceeded, 0)}},
            Counter::drop_ttl_exceeded);
    }
    {
        // A router on the way answers a packet of the session (as it left us).
        const Ipv4Address router = Topology::ip("203.0.113.1");
        const Frame quoted = PacketBuilder()
                                 .ipv4(m.udp1.addr, t.server1, 60, 9)
                                 .udp(m.udp1.port, 53)
                                 .payload("data")
                                 .build();
        const Frame quoted_in = PacketBuilder()
                                    .ipv4(t.subscriber1, t.server1, 60, 9)
                                    .udp(40000, 53)
                                    .payload("data")
                                    .build();
        id = next_id++;
        add("out2in ICMP time exceeded about a session, quote translated", O,
            {from_gw(router, m.udp1.addr, id)
                 .icmp(icmp::kTimeExceeded, 0, 0)
                 .payload(quoted)
                 .build()},
            {{I, to_sub1(router, id).icmp(icmp::kTimeExceeded, 0, 0).payload(quoted_in).build()}},
            Counter::icmp_errors_translated);
        id = next_id++;
        const Frame other = PacketBuilder()
                                .ipv4(m.udp1.addr, t.server2, 60, 9)
                                .udp(m.udp1.port, 999)
                                .payload("data")
                                .build();
        drop_out("out2in ICMP error about no session",
                 from_gw(router, m.udp1.addr, id)
                     .icmp(icmp::kDestUnreachable, 1, 0)
                     .payload(other)
                     .build(),
                 Counter::drop_icmp_error_no_session);
        id = next_id++;
        drop_out("out2in ICMP error quoting too little",
                 from_gw(router, m.udp1.addr, id)
                     .icmp(icmp::kDestUnreachable, 1, 0)
                     .payload("tiny")
                     .build(),
                 Counter::drop_icmp_error_malformed);
    }
    id = next_id++;
    add("echo request to cgnd's outside address is answered", O,
        {from_gw(t.server1, t.outside.address, id)
             .icmp_echo(icmp::kEchoRequest, 5, 6)
             .payload("up?")
             .build()},
        {{O, PacketBuilder()
                 .ethernet(out_mac, t.gateway_mac)
                 .ipv4(t.outside.address, t.server1, 64, id)
                 .icmp_echo(icmp::kEchoReply, 5, 6)
                 .payload("up?")
                 .build()}},
        Counter::icmp_echo_answered);
    id = next_id++;
    drop_out("UDP to cgnd's outside address",
             from_gw(t.server1, t.outside.address, id).udp(1, 2).build(), Counter::drop_for_us);
    id = next_id++;
    drop_out("out2in to an address not in the pool",
             from_gw(t.server1, Topology::ip("203.0.113.5"), id).udp(1, 2).build(),
             Counter::drop_ipv4_martian);
    {
        const std::string data(40, 'h');
        id = next_id++;
        const auto pieces = cut_into_fragments(
            from_gw(t.server1, m.udp1.addr, id).udp(53, m.udp1.port).payload(data).build(), 16, id);
        const auto translated =
            cut_into_fragments(to_sub1(t.server1, id).udp(53, 40000).payload(data).build(), 16, id);
        add("out2in fragments out of order: middle, first, last", O,
            {pieces[1], pieces[0], pieces[2]},
            {{I, translated[0]}, {I, translated[1]}, {I, translated[2]}},
            Counter::out2in_translated, 3);
        cases.back().any_order_in_bursts = true;
    }
    {
        id = next_id++;
        Frame f = from_gw(t.server1, m.udp1.addr, id).udp(53, m.udp1.port).payload("csum").build();
        f[14 + ipv4::kChecksum] ^= 0x11;
        drop_out("outside IP header checksum wrong", f, Counter::drop_ipv4_checksum);
    }
    return cases;
}

using Outputs = std::array<std::vector<Frame>, 2>;

Outputs drain(DataplaneHarness& h) { return {h.inside().drain(), h.outside().drain()}; }

void inject(DataplaneHarness& h, Side side, const Frame& f) {
    (side == Side::inside ? h.inside() : h.outside()).inject(f);
}

// Past the fragment timeout: the held lone fragment is dropped, counted.
void settle(DataplaneHarness& h) {
    h.poll(2);
    h.clock().advance_ms(3000);
    h.poll(2);
}

std::string describe_frames(const std::vector<Frame>& frames) {
    std::string out;
    for (const auto& f : frames) out += hex(f) + "\n--\n";
    return out;
}

struct FrameByFrame {
    Mappings mappings;
    common::CounterSnapshot counters;
};

FrameByFrame run_frame_by_frame() {
    DataplaneHarness h;
    configure(h);
    FrameByFrame result;
    result.mappings = prelude(h);
    const auto cases = make_cases(h, result.mappings);
    EXPECT_GE(cases.size(), 40u);
    for (const Case& c : cases) {
        SCOPED_TRACE(c.description);
        const common::CounterSnapshot before = h.counters();
        Outputs got;
        for (const Frame& f : c.inputs) {
            inject(h, c.side, f);
            h.poll();
            Outputs o = drain(h);
            for (int s = 0; s < 2; ++s) got[s].insert(got[s].end(), o[s].begin(), o[s].end());
        }
        Outputs want;
        for (const Output& o : c.outputs) want[static_cast<size_t>(o.side)].push_back(o.frame);
        EXPECT_EQ(got[0], want[0]) << "inside, got:\n"
                                   << describe_frames(got[0]) << "want:\n"
                                   << describe_frames(want[0]);
        EXPECT_EQ(got[1], want[1]) << "outside, got:\n"
                                   << describe_frames(got[1]) << "want:\n"
                                   << describe_frames(want[1]);
        const common::CounterSnapshot after = h.counters();
        const auto delta = [&](Counter x) {
            return after[static_cast<size_t>(x)] - before[static_cast<size_t>(x)];
        };
        EXPECT_EQ(delta(c.counter), c.count) << common::counter_name(c.counter);
        // No other drop moved.
        for (size_t i = 0; i < common::kCounterCount; ++i) {
            const auto x = static_cast<Counter>(i);
            if (x != c.counter && common::kCounterNames[i].starts_with("drop_")) {
                EXPECT_EQ(delta(x), 0u) << common::kCounterNames[i];
            }
        }
    }
    settle(h);
    EXPECT_EQ(h.counter(Counter::drop_fragment_timeout), 1u);
    const common::FrameBalance b = h.frame_balance();
    EXPECT_TRUE(b.balanced()) << b.describe();
    result.counters = h.counters();
    return result;
}

TEST(Oracle, FrameByFrameAndMixedBurstsAgreeWithTheTable) {
    const FrameByFrame reference = run_frame_by_frame();
    ASSERT_FALSE(HasFailure()) << "the frame-by-frame run disagrees with the table";

    for (const uint64_t seed : test_seeds({1, 2, 3, 4, 5, 6, 7, 8})) {
        SCOPED_TRACE("seed " + std::to_string(seed) +
                     " (rerun: CGN_TEST_SEED=" + std::to_string(seed) + ")");
        DataplaneHarness h;
        configure(h);
        const Mappings mappings = prelude(h);
        ASSERT_TRUE(mappings == reference.mappings) << "the prelude is not deterministic";
        const auto cases = make_cases(h, mappings);
        common::Random rng(seed);
        // Interleave: repeatedly take the next frame of a random case that has frames left.
        struct Step {
            size_t c, f;
        };
        std::vector<Step> order;
        std::vector<size_t> next(cases.size(), 0);
        std::vector<size_t> open;
        for (size_t c = 0; c < cases.size(); ++c) open.push_back(c);
        while (!open.empty()) {
            const size_t k = rng.below(static_cast<uint32_t>(open.size()));
            const size_t c = open[k];
            order.push_back({c, next[c]++});
            if (next[c] == cases[c].inputs.size()) {
                open[k] = open.back();
                open.pop_back();
            }
        }
        // Bursts of random size (up to two RX bursts per side) across both sides.
        Outputs got;
        for (size_t i = 0; i < order.size();) {
            const size_t n = 1 + rng.below(2 * dp::Worker::kBurst);
            for (size_t j = 0; j < n && i < order.size(); ++j, ++i)
                inject(h, cases[order[i].c].side, cases[order[i].c].inputs[order[i].f]);
            h.poll();
            Outputs o = drain(h);
            for (int s = 0; s < 2; ++s) got[s].insert(got[s].end(), o[s].begin(), o[s].end());
        }
        for (int i = 0; i < 4; ++i) {
            h.poll();
            Outputs o = drain(h);
            for (int s = 0; s < 2; ++s) got[s].insert(got[s].end(), o[s].begin(), o[s].end());
        }
        // Each frame out goes to the first case expecting it that still lacks it.
        for (int s = 0; s < 2; ++s) {
            std::map<Frame, std::vector<size_t>> expecting;
            std::vector<std::vector<Frame>> per_case(cases.size()), want(cases.size());
            for (size_t c = 0; c < cases.size(); ++c)
                for (const Output& o : cases[c].outputs)
                    if (static_cast<int>(o.side) == s) {
                        expecting[o.frame].push_back(c);
                        want[c].push_back(o.frame);
                    }
            for (const Frame& f : got[s]) {
                auto it = expecting.find(f);
                if (it == expecting.end() || it->second.empty()) {
                    ADD_FAILURE() << (s == 0 ? "inside" : "outside")
                                  << ": a frame no case expects:\n"
                                  << hex(f);
                    continue;
                }
                per_case[it->second.front()].push_back(f);
                it->second.erase(it->second.begin());
            }
            for (size_t c = 0; c < cases.size(); ++c) {
                if (cases[c].any_order_in_bursts) {
                    std::sort(per_case[c].begin(), per_case[c].end());
                    std::sort(want[c].begin(), want[c].end());
                }
                EXPECT_EQ(per_case[c], want[c])
                    << (s == 0 ? "inside" : "outside") << ": " << cases[c].description;
            }
        }
        settle(h);
        const common::CounterSnapshot counters = h.counters();
        for (size_t i = 0; i < common::kCounterCount; ++i)
            EXPECT_EQ(counters[i], reference.counters[i]) << common::kCounterNames[i];
        const common::FrameBalance b = h.frame_balance();
        EXPECT_TRUE(b.balanced()) << b.describe();
    }
}

}  // namespace
}  // namespace cgn::test
