// Writes the seed corpus of cgn-fuzz-packet-path: inputs (packet_path_world.hpp format) made
// of frames built with the PacketBuilder for the state the fuzzer starts from (the prelude's
// subscribers, MACs and external endpoints), one file per case, and a libFuzzer dictionary of
// the same addresses, ports and header values:
//   cgn-fuzz-packet-path-seeds tests/fuzz/corpus/packet_path tests/fuzz/packet_path.dict
// The files are committed; run this again after changing the prelude or the input format.

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "common/byte_order.hpp"
#include "common/checksum.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "tests/fuzz/dataplane/packet_path_world.hpp"

namespace cgn::fuzz {
namespace {

using common::Ipv4Address;
using common::PacketBuilder;
using Frame = std::vector<uint8_t>;
namespace eth = common::eth;
namespace ipv4 = common::ipv4;
namespace icmp = common::icmp;
namespace tcp = common::tcp;

constexpr bool kInside = false;
constexpr bool kOutside = true;

class SeedWriter {
public:
    SeedWriter(const PacketPathWorld& world, std::string dir) : w_(world), dir_(std::move(dir)) {}

    // Runs `input` in a fresh world and returns what its PCP items did (the external
    // endpoints the holds got: the seeds that follow send frames to them).
    std::vector<PacketPathWorld::PcpResult> probe(const InputWriter& input) {
        PacketPathWorld fresh;
        fresh.keep_output(true);
        fresh.run(input.bytes().data(), input.bytes().size());
        return fresh.pcp_results();
    }

    void write(const std::string& name, const InputWriter& input) {
        const std::string path = dir_ + "/" + name;
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(reinterpret_cast<const char*>(input.bytes().data()),
                  static_cast<std::streamsize>(input.bytes().size()));
        if (!out) {
            std::fprintf(stderr, "cannot write %s\n", path.c_str());
            std::exit(1);
        }
        // The seed must run clean in a world like the fuzzer's, which is the one it was made
        // for: the same prelude gives the same external endpoints.
        PacketPathWorld fresh;
        for (size_t i = 0; i < fresh.flows().size(); ++i) {
            if (fresh.flows()[i].external_port != w_.flows()[i].external_port) {
                std::fprintf(stderr, "the prelude is not deterministic\n");
                std::exit(1);
            }
        }
        fresh.keep_output(true);
        fresh.run(input.bytes().data(), input.bytes().size());
        std::printf("%-42s %5zu bytes, %3zu frames sent", name.c_str(), input.bytes().size(),
                    fresh.output().size());
        // Each PCP item: its tag, and the NatEngine's status and endpoint ("-": not made).
        for (const auto& r : fresh.pcp_results()) {
            if (!r.made)
                std::printf(" %02x:-", r.tag);
            else if (r.ext_port != 0)
                std::printf(" %02x:%u@%s:%u", r.tag, r.status, r.ext_addr.to_string().c_str(),
                            r.ext_port);
            else
                std::printf(" %02x:%u", r.tag, r.status);
        }
        // The PCP and filtering counters that moved, to see that the seed does what it says.
        using common::Counter;
        for (const Counter c : {Counter::pcp_requests_punted, Counter::pcp_answers_sent,
                                Counter::drop_pcp_rate_limited, Counter::drop_pcp_punt_full,
                                Counter::drop_pcp_from_outside, Counter::sessions_created_inbound,
                                Counter::drop_out2in_filtered, Counter::sessions_filtered_out}) {
            if (fresh.counter(c) != 0)
                std::printf(" %s=%llu",
                            std::string(common::kCounterNames[static_cast<size_t>(c)]).c_str(),
                            static_cast<unsigned long long>(fresh.counter(c)));
        }
        std::printf("\n");
        ++written_;
    }
    unsigned written() const { return written_; }

private:
    const PacketPathWorld& w_;
    std::string dir_;
    unsigned written_ = 0;
};

// Cuts a whole IPv4 frame into fragments of `chunk` payload bytes (a multiple of 8).
std::vector<Frame> fragments_of(const Frame& whole, size_t chunk) {
    constexpr size_t kIp = eth::kHeaderLength;
    const size_t ihl = (whole[kIp] & 0x0f) * 4u;
    const size_t payload = common::load_be16(&whole[kIp + ipv4::kTotalLength]) - ihl;
    std::vector<Frame> out;
    for (size_t offset = 0; offset < payload; offset += chunk) {
        const size_t length = std::min(chunk, payload - offset);
        Frame f(whole.begin(), whole.begin() + static_cast<ptrdiff_t>(kIp + ihl));
        const auto from = whole.begin() + static_cast<ptrdiff_t>(kIp + ihl + offset);
        f.insert(f.end(), from, from + static_cast<ptrdiff_t>(length));
        common::store_be16(&f[kIp + ipv4::kTotalLength], static_cast<uint16_t>(ihl + length));
        const bool more = offset + length < payload;
        common::store_be16(
            &f[kIp + ipv4::kFragment],
            static_cast<uint16_t>((offset / 8) | (more ? ipv4::kFlagMoreFragments : 0)));
        common::store_be16(&f[kIp + ipv4::kChecksum], 0);
        common::store_be16(&f[kIp + ipv4::kChecksum],
                           common::checksum_finish(common::checksum_partial(&f[kIp], ihl)));
        out.push_back(std::move(f));
    }
    return out;
}

std::vector<uint8_t> bytes_of(const char* text, size_t n) {
    std::vector<uint8_t> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(text[i % 26]);
    return out;
}

// A PCP MAP request (RFC 6887 §7.1, §11.1) from `client` for its UDP port `internal_port`.
std::vector<uint8_t> pcp_map_request(Ipv4Address client, uint16_t internal_port) {
    std::vector<uint8_t> m(60, 0);
    m[0] = 2;                         // version
    m[1] = 1;                         // MAP
    common::store_be32(&m[4], 7200);  // lifetime
    m[18] = m[19] = 0xff;             // the client's address, IPv4-mapped
    common::store_be32(&m[20], client.value);
    for (size_t i = 0; i < 12; ++i) m[24 + i] = static_cast<uint8_t>(0xa0 + i);  // nonce
    m[36] = ipv4::kProtoUdp;
    common::store_be16(&m[40], internal_port);
    return m;
}

// Seeds of the PCP items and of the worker's PCP punt path (issue 10).
void write_pcp_seeds(const PacketPathWorld& w, SeedWriter& seeds) {
    using Filter = InputWriter::Filter;
    const test::Topology& t = w.topo();
    const auto& flows = w.flows();
    const auto& udp0 = flows[0];
    const auto& udp1 = flows[3];
    const Ipv4Address sub0 = w.subscriber(0), sub1 = w.subscriber(1);
    const common::MacAddress mac0 = w.subscriber_mac(0), mac1 = w.subscriber_mac(1);
    const common::MacAddress in_mac = w.inside_mac(), out_mac = w.outside_mac();
    const uint8_t udp_sub0 = InputWriter::who(InputWriter::kSubscriber0, ipv4::kProtoUdp);
    const uint8_t udp_sub1 = InputWriter::who(InputWriter::kSubscriber1, ipv4::kProtoUdp);
    const uint8_t tcp_sub0 = InputWriter::who(InputWriter::kSubscriber0, ipv4::kProtoTcp);
    const uint8_t tcp_sub1 = InputWriter::who(InputWriter::kSubscriber1, ipv4::kProtoTcp);
    const uint8_t udp_silent = InputWriter::who(InputWriter::kSilentHost, ipv4::kProtoUdp);
    const uint8_t udp_new = InputWriter::who(InputWriter::kNewHost, ipv4::kProtoUdp);
    const uint8_t icmp_sub0 = InputWriter::who(InputWriter::kSubscriber0, ipv4::kProtoIcmp);

    const auto request = [&](Ipv4Address src, common::MacAddress mac, uint16_t internal_port,
                             Ipv4Address dst, uint16_t dst_port = PacketPathWorld::kPcpPort) {
        return PacketBuilder()
            .ethernet(mac, in_mac)
            .ipv4(src, dst, 64, 0x500)
            .udp(5350, dst_port)
            .payload(pcp_map_request(src, internal_port))
            .build();
    };
    const auto to_sub = [&](Ipv4Address src) {
        return request(src, src == sub0 ? mac0 : mac1, 5000, t.inside.address);
    };
    const auto udp_in = [&](Ipv4Address src, uint16_t sport, Ipv4Address dst, uint16_t dport) {
        return PacketBuilder()
            .ethernet(t.gateway_mac, out_mac)
            .ipv4(src, dst, 60, 0x510)
            .udp(sport, dport)
            .payload("inbound")
            .build();
    };
    const auto tcp_in = [&](Ipv4Address src, uint16_t sport, Ipv4Address dst, uint16_t dport,
                            uint8_t flags) {
        return PacketBuilder()
            .ethernet(t.gateway_mac, out_mac)
            .ipv4(src, dst, 60, 0x511)
            .tcp(sport, dport, flags, 9000, (flags & tcp::kAck_) != 0 ? 101 : 0)
            .build();
    };
    // The external endpoint of a hold (the last item of `prefix`), from a fresh world.
    const auto held_at = [&](const InputWriter& prefix) {
        const auto results = seeds.probe(prefix);
        const auto& r = results.back();
        if (!r.made || r.status != 0) {
            std::fprintf(stderr, "a seed's hold was refused\n");
            std::exit(1);
        }
        return std::pair<Ipv4Address, uint16_t>(r.ext_addr, r.ext_port);
    };

    // --- The punt path: requests to the ring, answers from it.
    seeds.write(
        "pcp-request-punted-and-answered",
        InputWriter().frame(kInside, 0, to_sub(sub0)).tick().answer(0).answer(0, 0, 3, 0x40));
    seeds.write("pcp-requests-both-workers-answered",
                InputWriter()
                    .frame(kInside, 0, to_sub(sub0))
                    .frame(kInside, 0, to_sub(sub1))  // handed over to its owner
                    .frame(kInside, 1, to_sub(sub1))
                    .tick()
                    .answer(0)
                    .answer(1)
                    .answer(2, 0, 1, 0x01));
    {
        InputWriter in;
        for (int i = 0; i < 6; ++i) in.frame(kInside, 0, to_sub(sub0));
        in.tick(40).frame(kInside, 0, to_sub(sub0));  // 12.8 s later: refilled
        seeds.write("pcp-request-rate-limited", in);
    }
    {
        InputWriter in;
        for (int i = 0; i < 4; ++i)
            in.frame(kInside, 0, to_sub(sub0)).frame(kInside, 1, to_sub(sub1));
        seeds.write("pcp-request-ring-full", in);
    }
    seeds.write("pcp-request-from-outside",
                InputWriter()
                    .frame(kOutside, 0, udp_in(t.server1, 5350, t.outside.address, 5351))
                    .frame(kOutside, 1, udp_in(t.server1, 5350, t.inside.address, 5351)));
    {
        // From a source off the inside prefix (punted, not answered: §18), to another port,
        // and in fragments (not a request the worker reads).
        const Ipv4Address off_prefix = test::Topology::ip("203.0.113.99");
        Frame fragmented = to_sub(sub0);
        common::store_be16(&fragmented[eth::kHeaderLength + ipv4::kFragment],
                           ipv4::kFlagMoreFragments);
        common::store_be16(&fragmented[eth::kHeaderLength + ipv4::kChecksum], 0);
        common::store_be16(&fragmented[eth::kHeaderLength + ipv4::kChecksum],
                           common::checksum_finish(common::checksum_partial(
                               &fragmented[eth::kHeaderLength], ipv4::kMinHeaderLength)));
        seeds.write("pcp-request-odd-sources",
                    InputWriter()
                        .frame(kInside, 0, request(off_prefix, mac0, 5000, t.inside.address))
                        .frame(kInside, 1, request(sub1, mac1, 5000, t.inside.address, 5352))
                        .frame(kInside, 0, fragmented)
                        .tick()
                        .answer(0));
    }
    seeds.write("pcp-unsolicited-answers",
                InputWriter()
                    .answer(InputWriter::kSubscriber0, InputWriter::kUnsolicited)
                    .answer(InputWriter::kSilentHost, InputWriter::kUnsolicited)  // ARP first
                    .answer(InputWriter::kNewHost, InputWriter::kUnsolicited, 7, 0x11)
                    .tick(12)
                    .tick(12));

    // --- RFC 6887 §13.3: a hold with a FILTER, inbound from a listed and a non-listed peer,
    // a refresh with other filters (the session it no longer admits removed), a release.
    {
        InputWriter hold;
        hold.hold(udp_sub0, 5000, {Filter{t.server1, 32}});
        const auto [addr, port] = held_at(hold);
        InputWriter in = hold;
        in.frame(kOutside, 0, udp_in(t.server1, 7000, addr, port))    // listed: delivered
            .frame(kOutside, 1, udp_in(t.server2, 7000, addr, port))  // not listed: filtered
            .hold(udp_sub0, 5000, {Filter{t.server2, 32, 7000}})      // server1's session ends
            .frame(kOutside, 0, udp_in(t.server1, 7000, addr, port))  // filtered now
            .frame(kOutside, 0, udp_in(t.server2, 7000, addr, port))  // listed now
            .frame(kOutside, 1, udp_in(t.server2, 7001, addr, port))  // not this port
            .release(udp_sub0, 5000)
            .frame(kOutside, 1, udp_in(t.server1, 7002, addr, port))  // ordinary mapping again
            .tick(100);
        seeds.write("pcp-hold-filter-listed-not-listed-refresh-release", in);
    }
    {
        InputWriter hold;
        hold.hold(tcp_sub1, 6000, {Filter{t.server2, 32, 443}});
        const auto [addr, port] = held_at(hold);
        InputWriter in = hold;
        in.frame(kOutside, 0, tcp_in(t.server2, 443, addr, port, tcp::kSyn))    // admitted
            .frame(kOutside, 1, tcp_in(t.server2, 444, addr, port, tcp::kSyn))  // filtered
            .frame(kOutside, 0, tcp_in(t.server1, 443, addr, port, tcp::kSyn))  // filtered
            .tick()  // the SYN first, then the subscriber's answer
            .frame(kInside, 1,
                   PacketBuilder()
                       .ethernet(mac1, in_mac)
                       .ipv4(sub1, t.server2, 64, 0x520)
                       .tcp(6000, 443, tcp::kSyn | tcp::kAck_, 100, 9001)
                       .build())
            .hold(tcp_sub1, 6000, {Filter{t.server1, 32, 443}})  // the server2 session ends
            .frame(kInside, 1,
                   PacketBuilder()
                       .ethernet(mac1, in_mac)
                       .ipv4(sub1, t.server2, 64, 0x521)
                       .tcp(6000, 443, tcp::kAck_, 101, 9001)
                       .build());
        seeds.write("pcp-hold-tcp-filtered-syn", in);
    }
    {
        // 16 filters on the prelude's UDP flow of subscriber 1 (its own flow stays).
        std::vector<Filter> sixteen;
        for (uint8_t i = 0; i < 16; ++i)
            sixteen.push_back(Filter{Ipv4Address{t.server2.value + i * 256u},
                                     static_cast<uint8_t>(17 + i), static_cast<uint16_t>(i * 7)});
        seeds.write(
            "pcp-hold-existing-flow-16-filters",
            InputWriter()
                .hold(udp_sub1, udp1.internal_port, sixteen)
                .frame(kOutside, 0,
                       udp_in(udp1.remote_addr, udp1.remote_port, udp1.external_addr,
                              udp1.external_port))
                .frame(kOutside, 1,
                       udp_in(t.gateway, 9, udp1.external_addr,
                              udp1.external_port))   // filtered
                .hold(udp_sub1, udp1.internal_port)  // no filters: anyone
                .frame(kOutside, 1, udp_in(t.gateway, 9, udp1.external_addr, udp1.external_port))
                .release(udp_sub1, udp1.internal_port));
    }
    {
        // A suggested port in a free block of worker 0's share (block 10), exact; one in worker
        // 1's (block 11): refused when exact, another port otherwise; an address not the pool's;
        // ICMP, which PCP does not map.
        const uint16_t ours = 1024 + 10 * 64 + 5, theirs = 1024 + 11 * 64 + 5;
        InputWriter hold;
        hold.hold(udp_sub0, 5100, {}, ours, InputWriter::kExact);
        const auto [addr, port] = held_at(hold);
        InputWriter in = hold;
        in.hold(udp_sub0, 5101, {}, theirs, InputWriter::kExact)
            .hold(udp_sub0, 5101, {}, theirs)
            .hold(udp_sub0, 5102, {}, ours, static_cast<uint8_t>(InputWriter::kExact | (5 << 1)))
            .hold(udp_sub0, 5103, {}, static_cast<uint16_t>(ours + 1),
                  static_cast<uint8_t>(InputWriter::kExact | InputWriter::suggest_pool_address(2)))
            .hold(icmp_sub0, 5104)
            .frame(kOutside, 0, udp_in(t.server1, 4000, addr, port));
        seeds.write("pcp-hold-suggested-exact-and-refused", in);
    }
    seeds.write("pcp-filter-sets-run-out",
                InputWriter()
                    .hold(udp_sub0, 5000, {Filter{t.server1, 32}})
                    .hold(udp_sub0, 5001, {Filter{t.server1, 32}})
                    .hold(udp_sub0, 5002, {Filter{t.server1, 32}})
                    .hold(udp_sub0, 5003, {Filter{t.server1, 32}})
                    .hold(udp_sub0, 5004, {Filter{t.server1, 32}})  // no set left: refused
                    .hold(udp_sub0, 5004)                           // needs none
                    .hold(udp_sub0, 5004, {Filter{t.server2, 32}})  // still none
                    .release(udp_sub0, 5000)
                    .hold(udp_sub0, 5004, {Filter{t.server2, 32}})
                    .hold(udp_sub1, 5000, {Filter{t.server1, 8}}));  // the other worker's sets
    seeds.write("pcp-peer-flows",
                InputWriter()
                    .peer(tcp_sub0, 6000, t.server1, 443)
                    .peer(udp_sub0, udp0.internal_port, udp0.remote_addr, udp0.remote_port)
                    .peer(icmp_sub0, 7, t.server1, 7)
                    .peer(udp_new, 5353, t.server2, 5353)
                    .frame(kOutside, 0,
                           udp_in(udp0.remote_addr, udp0.remote_port, udp0.external_addr,
                                  udp0.external_port))
                    .tick(200)
                    .peer(udp_sub0, udp0.internal_port, udp0.remote_addr, udp0.remote_port));
    seeds.write("pcp-paired-address",
                InputWriter()
                    .paired_address(udp_new)
                    .paired_address(udp_sub0)
                    .paired_address(udp_silent)
                    .hold(udp_new, 4000)
                    .release(udp_new, 4000)
                    .tick(70)  // 39 s: past the hold-down, the block and the pairing go
                    .paired_address(udp_new));
    seeds.write(
        "pcp-hold-outlives-its-sessions",
        InputWriter()
            .hold(udp_sub0, udp0.internal_port)
            .tick(255)
            .tick(255)
            .frame(kOutside, 1, udp_in(t.server2, 9999, udp0.external_addr, udp0.external_port))
            .release(udp_sub0, udp0.internal_port)
            .tick(255)
            .frame(kOutside, 0, udp_in(t.server2, 9999, udp0.external_addr, udp0.external_port)));
    {
        InputWriter hold;
        hold.hold(udp_silent, 5000, {Filter{t.server1, 24}});
        const auto [addr, port] = held_at(hold);
        InputWriter in = hold;
        in.frame(kOutside, 0, udp_in(t.server1, 53, addr, port))  // waits for ARP
            .tick(1)
            .release(udp_silent, 5000)
            .release(udp_silent, 5000)              // not held any more
            .release(udp_sub0, udp0.internal_port)  // never held
            .hold(udp_sub0, 0)                      // not asked by the server: skipped
            .peer(udp_sub0, 5000, t.server1, 0);
        seeds.write("pcp-release-and-skipped-items", in);
    }
    {
        // Everything at once: requests, holds, answers and frames to the held endpoints.
        InputWriter hold;
        hold.hold(udp_sub1, 5000, {Filter{t.server1, 32}, Filter{t.server2, 32, 53}});
        const auto [addr, port] = held_at(hold);
        InputWriter in = hold;
        in.frame(kInside, 0, to_sub(sub0))
            .frame(kOutside, 0, udp_in(t.server1, 1, addr, port))
            .frame(kInside, 1, to_sub(sub1))
            .frame(kOutside, 1, udp_in(t.server2, 53, addr, port))
            .frame(kOutside, 1, udp_in(t.server2, 54, addr, port))
            .hold(udp_sub0, 5000, {Filter{t.server1, 32}})
            .answer(0)
            .frame(kInside, 1,
                   PacketBuilder()
                       .ethernet(mac1, in_mac)
                       .ipv4(sub1, t.server1, 64, 0x530)
                       .udp(5000, 1)
                       .payload("reply")
                       .build())
            .answer(1, 0, 30, 0x77)
            .tick(3)
            .peer(udp_sub1, 5001, t.server2, 53)
            .release(udp_sub1, 5000);
        seeds.write("pcp-mixed", in);
    }
}

void write_seeds(const PacketPathWorld& w, const std::string& dir) {
    SeedWriter seeds(w, dir);
    const test::Topology& t = w.topo();
    const auto& flows = w.flows();
    // flows: per worker w, [3w] UDP, [3w+1] TCP (established), [3w+2] ICMP echo.
    const auto& udp0 = flows[0];
    const auto& tcp0 = flows[1];
    const auto& echo0 = flows[2];
    const auto& udp1 = flows[3];
    const auto& tcp1 = flows[4];
    const auto& echo1 = flows[5];
    const Ipv4Address sub0 = w.subscriber(0), sub1 = w.subscriber(1);
    const common::MacAddress mac0 = w.subscriber_mac(0), mac1 = w.subscriber_mac(1);
    const common::MacAddress in_mac = w.inside_mac(), out_mac = w.outside_mac();
    const Ipv4Address unknown_subscriber = w.silent_subscriber();  // no worker knows its MAC
    const Ipv4Address exempt = test::Topology::ip("203.0.113.130");

    const auto inside = [&](common::MacAddress src_mac) {
        return PacketBuilder().ethernet(src_mac, in_mac);
    };
    const auto outside = [&]() { return PacketBuilder().ethernet(t.gateway_mac, out_mac); };
    const auto udp_out = [&](Ipv4Address src, uint16_t sport, Ipv4Address dst, uint16_t dport,
                             uint8_t ttl = 64) {
        return inside(mac0).ipv4(src, dst, ttl, 0x300).udp(sport, dport).payload("data").build();
    };
    const auto udp_reply = [&](const PacketPathWorld::Flow& f, const char* data = "answer") {
        return outside()
            .ipv4(f.remote_addr, f.external_addr, 60, 0x400)
            .udp(f.remote_port, f.external_port)
            .payload(data)
            .build();
    };

    // --- UDP, both ways, on the owner's queue and on the other worker's (handoff).
    seeds.write("udp-in2out-new",
                InputWriter().frame(kInside, 0, udp_out(sub0, 41000, t.server1, 53)));
    seeds.write("udp-in2out-new-other-queue",
                InputWriter().frame(kInside, 1, udp_out(sub0, 41001, t.server2, 53)));
    seeds.write("udp-in2out-existing",
                InputWriter().frame(kInside, 0, udp_out(sub0, 40000, t.server1, 53)));
    seeds.write("udp-out2in-reply", InputWriter().frame(kOutside, 0, udp_reply(udp0)));
    seeds.write(
        "udp-out2in-reply-both-queues",
        InputWriter().frame(kOutside, 0, udp_reply(udp1)).frame(kOutside, 1, udp_reply(udp0)));
    seeds.write("udp-out2in-filtered-endpoint",
                InputWriter().frame(kOutside, 0,
                                    outside()
                                        .ipv4(t.server2, udp0.external_addr, 60, 0x401)
                                        .udp(9999, udp0.external_port)
                                        .payload("unsolicited")
                                        .build()));
    seeds.write("udp-out2in-no-mapping",
                InputWriter().frame(kOutside, 1,
                                    outside()
                                        .ipv4(t.server1, udp0.external_addr, 60, 0x402)
                                        .udp(53, 2000)
                                        .payload("nobody")
                                        .build()));
    seeds.write("udp-without-checksum", InputWriter().frame(kInside, 0,
                                                            inside(mac0)
                                                                .ipv4(sub0, t.server1, 64, 0x301)
                                                                .udp(40000, 53)
                                                                .udp_without_checksum()
                                                                .payload("zero")
                                                                .build()));

    // --- TCP: a new connection, traffic on the established one, closing.
    seeds.write(
        "tcp-syn-new",
        InputWriter().frame(
            kInside, 1,
            inside(mac1).ipv4(sub1, t.server2, 64, 0x310).tcp(42000, 443, tcp::kSyn, 77).build()));
    seeds.write("tcp-handshake",
                InputWriter()
                    .frame(kInside, 0,
                           inside(mac0)
                               .ipv4(sub0, t.server2, 64, 0x311)
                               .tcp(42001, 443, tcp::kSyn, 10)
                               .build())
                    .tick(1)
                    .frame(kOutside, 1,
                           outside()
                               .ipv4(t.server2, tcp0.external_addr, 60, 0x411)
                               .tcp(443, tcp0.external_port, tcp::kSyn | tcp::kAck_, 90, 11)
                               .build()));
    seeds.write("tcp-established-data",
                InputWriter()
                    .frame(kInside, 0,
                           inside(mac0)
                               .ipv4(sub0, t.server1, 64, 0x312)
                               .tcp(40001, 80, tcp::kAck_ | tcp::kPsh, 1001, 5001)
                               .payload("GET /")
                               .build())
                    .frame(kOutside, 0,
                           outside()
                               .ipv4(t.server1, tcp0.external_addr, 60, 0x412)
                               .tcp(80, tcp0.external_port, tcp::kAck_ | tcp::kPsh, 5001, 1006)
                               .payload("200 OK")
                               .build()));
    seeds.write("tcp-fin-both-ways",
                InputWriter()
                    .frame(kInside, 1,
                           inside(mac1)
                               .ipv4(sub1, t.server1, 64, 0x313)
                               .tcp(40001, 80, tcp::kFin | tcp::kAck_, 1001, 5001)
                               .build())
                    .frame(kOutside, 0,
                           outside()
                               .ipv4(t.server1, tcp1.external_addr, 60, 0x413)
                               .tcp(80, tcp1.external_port, tcp::kFin | tcp::kAck_, 5001, 1002)
                               .build())
                    .tick(100));
    seeds.write("tcp-rst-from-outside",
                InputWriter().frame(kOutside, 1,
                                    outside()
                                        .ipv4(t.server1, tcp0.external_addr, 60, 0x414)
                                        .tcp(80, tcp0.external_port, tcp::kRst, 5001)
                                        .build()));
    seeds.write("tcp-syn-unsolicited",
                InputWriter().frame(kOutside, 0,
                                    outside()
                                        .ipv4(t.server2, udp0.external_addr, 60, 0x415)
                                        .tcp(5555, 1500, tcp::kSyn, 3)
                                        .build()));

    // --- ICMP echo, both ways, and to our own addresses.
    seeds.write("icmp-echo-new", InputWriter().frame(kInside, 0,
                                                     inside(mac0)
                                                         .ipv4(sub0, t.server1, 64, 0x320)
                                                         .icmp_echo(icmp::kEchoRequest, 0x2000, 1)
                                                         .payload("ping")
                                                         .build()));
    seeds.write("icmp-echo-reply",
                InputWriter().frame(kOutside, 1,
                                    outside()
                                        .ipv4(echo0.remote_addr, echo0.external_addr, 60, 0x420)
                                        .icmp_echo(icmp::kEchoReply, echo0.external_port, 1)
                                        .payload("ping")
                                        .build()));
    seeds.write("icmp-echo-to-inside-address",
                InputWriter().frame(kInside, 0,
                                    inside(mac0)
                                        .ipv4(sub0, t.inside.address, 64, 0x321)
                                        .icmp_echo(icmp::kEchoRequest, 7, 1)
                                        .payload("us")
                                        .build()));
    seeds.write("icmp-echo-to-outside-address",
                InputWriter().frame(kOutside, 0,
                                    outside()
                                        .ipv4(t.server1, t.outside.address, 64, 0x421)
                                        .icmp_echo(icmp::kEchoRequest, 8, 1)
                                        .payload("us")
                                        .build()));
    // Each port answers for the other's address too, whatever the source (found by the fuzzer:
    // the output checks allow echo replies from our addresses anywhere).
    seeds.write("icmp-echo-to-inside-address-from-outside",
                InputWriter().frame(kOutside, 0,
                                    outside()
                                        .ipv4(t.server1, t.inside.address, 64, 0x423)
                                        .icmp_echo(icmp::kEchoRequest, 7, 1)
                                        .payload("ping")
                                        .build()));
    seeds.write("icmp-echo-to-outside-address-from-inside-offlink",
                InputWriter().frame(kInside, 1,
                                    inside(mac1)
                                        .ipv4(t.server1, t.outside.address, 64, 0x322)
                                        .icmp_echo(icmp::kEchoRequest, 7, 1)
                                        .payload("ping")
                                        .build()));
    seeds.write("icmp-echo-to-pool-address",
                InputWriter().frame(kOutside, 1,
                                    outside()
                                        .ipv4(t.server1, echo1.external_addr, 64, 0x422)
                                        .icmp_echo(icmp::kEchoRequest, 9, 1)
                                        .build()));

    // --- ICMP errors (RFC 5508 §4): about a session's packet, both ways; malformed.
    const Frame quoted_out = PacketBuilder()
                                 .ipv4(udp0.external_addr, udp0.remote_addr, 63, 0x300)
                                 .udp(udp0.external_port, udp0.remote_port)
                                 .payload("data")
                                 .build();
    seeds.write("icmp-error-port-unreachable-from-outside",
                InputWriter().frame(kOutside, 1,
                                    outside()
                                        .ipv4(udp0.remote_addr, udp0.external_addr, 64, 0x430)
                                        .icmp(icmp::kDestUnreachable, 3, 0)
                                        .payload(quoted_out)
                                        .build()));
    seeds.write(
        "icmp-error-time-exceeded-from-router",
        InputWriter().frame(
            kOutside, 0,
            outside()
                .ipv4(t.gateway, tcp1.external_addr, 64, 0x431)
                .icmp(icmp::kTimeExceeded, 0, 0)
                .payload(PacketBuilder()
                             .ipv4(tcp1.external_addr, tcp1.remote_addr, 1, 0x313)
                             .tcp(tcp1.external_port, tcp1.remote_port, tcp::kAck_, 1001, 5001)
                             .build())
                .build()));
    seeds.write("icmp-error-frag-needed-about-echo",
                InputWriter().frame(
                    kOutside, 0,
                    outside()
                        .ipv4(t.gateway, echo0.external_addr, 64, 0x432)
                        .icmp(icmp::kDestUnreachable, icmp::kCodeFragmentationNeeded, 1280)
                        .payload(PacketBuilder()
                                     .ipv4(echo0.external_addr, echo0.remote_addr, 63, 0x102)
                                     .icmp_echo(icmp::kEchoRequest, echo0.external_port, 1)
                                     .payload("ping")
                                     .build())
                        .build()));
    seeds.write("icmp-error-from-inside",
                InputWriter().frame(kInside, 1,
                                    inside(mac1)
                                        .ipv4(sub1, udp1.remote_addr, 64, 0x330)
                                        .icmp(icmp::kDestUnreachable, 3, 0)
                                        .payload(PacketBuilder()
                                                     .ipv4(udp1.remote_addr, sub1, 59, 0x400)
                                                     .udp(udp1.remote_port, udp1.internal_port)
                                                     .payload("answer")
                                                     .build())
                                        .build()));
    Frame bad_error = outside()
                          .ipv4(udp0.remote_addr, udp0.external_addr, 64, 0x433)
                          .icmp(icmp::kDestUnreachable, 3, 0)
                          .payload(quoted_out)
                          .build();
    bad_error[eth::kHeaderLength + ipv4::kMinHeaderLength + icmp::kChecksum] ^= 0x55;
    seeds.write("icmp-error-bad-checksum", InputWriter().frame(kOutside, 1, bad_error));
    seeds.write("icmp-error-quote-too-short",
                InputWriter().frame(
                    kOutside, 0,
                    outside()
                        .ipv4(udp0.remote_addr, udp0.external_addr, 64, 0x434)
                        .icmp(icmp::kDestUnreachable, 3, 0)
                        .payload(std::vector<uint8_t>(quoted_out.begin(), quoted_out.begin() + 24))
                        .build()));

    // --- Fragments (RFC 4787 REQ-14): in order, out of order, both ways, one lost.
    const Frame big_out = inside(mac0)
                              .ipv4(sub0, t.server1, 64, 0x340)
                              .udp(40000, 53)
                              .payload(bytes_of("abcdefghijklmnopqrstuvwxyz", 600))
                              .build();
    const auto out_frags = fragments_of(big_out, 256);
    {
        InputWriter in;
        for (const auto& f : out_frags) in.frame(kInside, 1, f);
        seeds.write("fragments-in2out-in-order", in);
    }
    {
        InputWriter in;
        for (size_t i = out_frags.size(); i-- > 0;) in.frame(kInside, 0, out_frags[i]);
        seeds.write("fragments-in2out-reversed", in);
    }
    const Frame big_in = outside()
                             .ipv4(udp1.remote_addr, udp1.external_addr, 60, 0x440)
                             .udp(udp1.remote_port, udp1.external_port)
                             .payload(bytes_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 700))
                             .build();
    const auto in_frags = fragments_of(big_in, 240);
    {
        InputWriter in;
        in.frame(kOutside, 0, in_frags[2])
            .frame(kOutside, 1, in_frags[0])
            .frame(kOutside, 0, in_frags[1]);
        seeds.write("fragments-out2in-out-of-order", in);
    }
    seeds.write(
        "fragment-held-then-timeout",
        InputWriter().frame(kOutside, 1, in_frags[1]).tick(20).frame(kOutside, 0, in_frags[0]));

    // --- ARP (RFC 826).
    seeds.write("arp-request-for-inside-address",
                InputWriter().frame(kInside, 0, test::arp_request(mac1, sub1, t.inside.address)));
    seeds.write("arp-request-for-pool-address",
                InputWriter().frame(
                    kOutside, 1, test::arp_request(t.gateway_mac, t.gateway, udp0.external_addr)));
    seeds.write(
        "arp-request-not-ours",
        InputWriter().frame(kOutside, 0, test::arp_request(t.gateway_mac, t.gateway, t.server1)));
    seeds.write("arp-reply-learns-new-subscriber",
                InputWriter()
                    .frame(kOutside, 0,
                           outside()
                               .ipv4(udp0.remote_addr, udp0.external_addr, 60, 0x450)
                               .udp(udp0.remote_port, udp0.external_port)
                               .build())
                    .frame(kInside, 1,
                           test::arp_reply(common::MacAddress{{2, 0, 0, 0, 0x33, 1}},
                                           unknown_subscriber, in_mac, t.inside.address)));
    Frame arp_bad = test::arp_request(mac0, sub0, t.inside.address);
    arp_bad[eth::kHeaderLength + common::arp::kHardwareLength] = 8;
    seeds.write("arp-malformed", InputWriter().frame(kInside, 0, arp_bad));

    // --- Unresolved next hop: held for ARP, then given up after the retransmits, or
    // resolved by the subscriber's answer.
    const auto& silent = flows[6];
    seeds.write("neighbor-unresolved", InputWriter()
                                           .frame(kOutside, 0, udp_reply(silent))
                                           .frame(kOutside, 1, udp_reply(silent))
                                           .tick(12)
                                           .tick(12));
    seeds.write("neighbor-resolved-by-reply",
                InputWriter()
                    .frame(kOutside, 1, udp_reply(silent))
                    .tick(1)
                    .frame(kInside, 0,
                           test::arp_reply(common::MacAddress{{2, 0, 0, 0, 0x33, 1}},
                                           unknown_subscriber, in_mac, t.inside.address)));
    seeds.write("neighbor-queue-full", InputWriter()
                                           .frame(kOutside, 0, udp_reply(silent, "1"))
                                           .frame(kOutside, 0, udp_reply(silent, "2"))
                                           .frame(kOutside, 0, udp_reply(silent, "3"))
                                           .frame(kOutside, 0, udp_reply(silent, "4"))
                                           .frame(kOutside, 0, udp_reply(silent, "5")));

    // --- Hairpin (RFC 4787 REQ-9): subscriber 0 to subscriber 1's external endpoint.
    seeds.write("hairpin-udp",
                InputWriter().frame(kInside, 0,
                                    udp_out(sub0, 40000, udp1.external_addr, udp1.external_port)));
    seeds.write("hairpin-tcp", InputWriter().frame(kInside, 1,
                                                   inside(mac1)
                                                       .ipv4(sub1, tcp0.external_addr, 64, 0x360)
                                                       .tcp(44000, tcp0.external_port, tcp::kSyn, 1)
                                                       .build()));

    // --- Exempt destination (RFC 6888 REQ-6), both ways.
    seeds.write(
        "exempt-both-ways",
        InputWriter()
            .frame(kInside, 0, udp_out(sub0, 45000, exempt, 53))
            .frame(kOutside, 1, outside().ipv4(exempt, sub0, 60, 0x460).udp(53, 45000).build()));

    // --- MTU (RFC 4787 REQ-13/13a): too big with DF (fragmentation needed), without (split).
    Frame too_big = inside(mac0)
                        .ipv4(sub0, t.server1, 64, 0x370)
                        .udp(40000, 53)
                        .payload(bytes_of("qwertyuiopasdfghjklzxcvbnm", 1600))
                        .build();
    seeds.write("too-big-without-df", InputWriter().frame(kInside, 0, too_big));
    seeds.write("too-big-with-df",
                InputWriter().frame(kInside, 0,
                                    inside(mac0)
                                        .ipv4(sub0, t.server1, 64, 0x371)
                                        .ipv4_fragment(ipv4::kFlagDontFragment)
                                        .udp(40000, 53)
                                        .payload(bytes_of("qwertyuiopasdfghjklzxcvbnm", 1600))
                                        .build()));

    // --- Quota (RFC 6888 REQ-11): past its 24 sessions, a subscriber is refused and told.
    {
        InputWriter in;
        for (uint16_t port = 0; port < 24; ++port)
            in.frame(kInside, port & 1,
                     udp_out(sub0, static_cast<uint16_t>(47000 + port), t.server2, 53));
        seeds.write("quota-sessions-refused", in);
    }

    // --- Time: sessions expire, blocks are released after their hold-down.
    seeds.write("expiry-then-reply",
                InputWriter().tick(255).tick(255).frame(kOutside, 0, udp_reply(udp0)));

    // --- Malformed and refused frames, one drop reason each.
    seeds.write("runt", InputWriter().frame(kInside, 0, Frame{0x00, 0x01, 0x02}));
    Frame vlan = udp_out(sub0, 40000, t.server1, 53);
    common::store_be16(&vlan[eth::kType], eth::kTypeVlan);
    seeds.write("ethertype-vlan", InputWriter().frame(kInside, 0, vlan));
    Frame other_mac = udp_out(sub0, 40000, t.server1, 53);
    other_mac[0] = 0x02;
    seeds.write("unicast-for-another-mac", InputWriter().frame(kInside, 1, other_mac));
    Frame bad_ihl = udp_out(sub0, 40000, t.server1, 53);
    bad_ihl[eth::kHeaderLength] = 0x4f;
    seeds.write("ipv4-header-length-beyond-frame", InputWriter().frame(kInside, 0, bad_ihl));
    Frame bad_sum = udp_out(sub0, 40000, t.server1, 53);
    bad_sum[eth::kHeaderLength + ipv4::kChecksum] ^= 1;
    seeds.write("ipv4-bad-checksum", InputWriter().frame(kInside, 0, bad_sum));
    Frame cut = udp_out(sub0, 40000, t.server1, 53);
    cut.resize(eth::kHeaderLength + ipv4::kMinHeaderLength + 4);
    seeds.write("ipv4-truncated", InputWriter().frame(kInside, 0, cut));
    seeds.write("ipv4-options", InputWriter().frame(kInside, 1,
                                                    inside(mac1)
                                                        .ipv4(sub1, t.server2, 64, 0x380)
                                                        .ipv4_options({0x94, 0x04, 0, 0})
                                                        .udp(40000, 123)
                                                        .build()));
    seeds.write("ttl-1-both-ways",
                InputWriter()
                    .frame(kInside, 0, udp_out(sub0, 40000, t.server1, 53, 1))
                    .frame(kOutside, 1,
                           outside()
                               .ipv4(udp0.remote_addr, udp0.external_addr, 1, 0x470)
                               .udp(udp0.remote_port, udp0.external_port)
                               .build()));
    // A source outside the inside prefix (no inside gateway here): translated, but its
    // replies have no route; with TTL 1 it is answered at the MAC it came from.
    seeds.write(
        "inside-source-off-prefix-ttl-1",
        InputWriter().frame(kInside, 0,
                            udp_out(test::Topology::ip("203.0.113.99"), 40000, t.server1, 53, 1)));
    seeds.write("martian-source",
                InputWriter().frame(kOutside, 0,
                                    outside()
                                        .ipv4(Ipv4Address{0x7f000001}, udp0.external_addr, 60, 1)
                                        .udp(53, udp0.external_port)
                                        .build()));
    seeds.write("protocol-not-translated",
                InputWriter().frame(
                    kInside, 0,
                    inside(mac0).ipv4(sub0, t.server1, 64, 0x390).raw(47).payload("gre").build()));
    seeds.write("icmp-type-not-translated",
                InputWriter().frame(kInside, 0,
                                    inside(mac0)
                                        .ipv4(sub0, t.server1, 64, 0x391)
                                        .icmp(13, 0, 0)
                                        .payload("timestamp")
                                        .build()));

    // --- A mixed burst of everything above on both ports and queues.
    {
        InputWriter in;
        in.frame(kInside, 0, udp_out(sub0, 46000, t.server1, 53))
            .frame(kOutside, 1, udp_reply(udp1))
            .frame(kInside, 1, test::arp_request(mac1, sub1, t.inside.address))
            .frame(kInside, 1, out_frags[1])
            .frame(kOutside, 0, bad_error)
            .frame(kInside, 0, bad_sum)
            .frame(kInside, 0, udp_out(sub0, 40000, udp1.external_addr, udp1.external_port))
            .frame(kOutside, 1, in_frags[0])
            .frame(kInside, 1, out_frags[0])
            .frame(kOutside, 0,
                   outside()
                       .ipv4(udp0.remote_addr, udp0.external_addr, 64, 0x480)
                       .icmp(icmp::kDestUnreachable, 3, 0)
                       .payload(quoted_out)
                       .build())
            .frame(kInside, 0, udp_out(sub0, 40000, t.server1, 53, 1))
            .frame(kOutside, 1, in_frags[2])
            .frame(kInside, 1, out_frags[2])
            .tick(16)
            .frame(kOutside, 0, udp_reply(udp0))
            .frame(kOutside, 1, in_frags[1]);
        seeds.write("mixed-burst", in);
    }
    write_pcp_seeds(w, seeds);
    std::printf("%u seeds written to %s\n", seeds.written(), dir.c_str());
}

// libFuzzer dictionary entries ("\xNN" escapes): the values a mutation should be able to
// drop into a header as a whole.
class DictionaryWriter {
public:
    void add(const std::string& name, const std::vector<uint8_t>& bytes) {
        text_ += name + "=\"";
        char b[8];
        for (uint8_t c : bytes) {
            std::snprintf(b, sizeof b, "\\x%02x", c);
            text_ += b;
        }
        text_ += "\"\n";
    }
    void add16(const std::string& name, uint16_t v) {
        add(name, {static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)});
    }
    void add32(const std::string& name, uint32_t v) {
        add(name, {static_cast<uint8_t>(v >> 24), static_cast<uint8_t>(v >> 16),
                   static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)});
    }
    void add_mac(const std::string& name, const common::MacAddress& mac) {
        add(name, std::vector<uint8_t>(mac.bytes.begin(), mac.bytes.end()));
    }
    const std::string& text() const { return text_; }

private:
    std::string text_ =
        "# cgn-fuzz-packet-path dictionary, written by cgn-fuzz-packet-path-seeds\n";
};

void write_dictionary(const PacketPathWorld& w, const std::string& path) {
    const test::Topology& t = w.topo();
    DictionaryWriter d;
    d.add16("ethertype_ipv4", eth::kTypeIpv4);
    d.add16("ethertype_arp", eth::kTypeArp);
    d.add16("ethertype_vlan", eth::kTypeVlan);
    d.add_mac("mac_broadcast", common::MacAddress::broadcast());
    d.add_mac("mac_inside_port", w.inside_mac());
    d.add_mac("mac_outside_port", w.outside_mac());
    d.add_mac("mac_gateway", t.gateway_mac);
    for (unsigned i = 0; i < PacketPathWorld::kWorkers; ++i) {
        d.add_mac("mac_subscriber" + std::to_string(i), w.subscriber_mac(i));
        d.add32("ip_subscriber" + std::to_string(i), w.subscriber(i).value);
    }
    d.add32("ip_silent_subscriber", w.silent_subscriber().value);
    d.add32("ip_inside", t.inside.address.value);
    d.add32("ip_outside", t.outside.address.value);
    d.add32("ip_gateway", t.gateway.value);
    d.add32("ip_server1", t.server1.value);
    d.add32("ip_server2", t.server2.value);
    d.add32("ip_exempt", test::Topology::ip("203.0.113.130").value);
    for (uint32_t i = 0; i < 4; ++i)
        d.add32("ip_pool" + std::to_string(i), t.pool.address.value + i);
    for (size_t i = 0; i < w.flows().size(); ++i) {
        const auto& f = w.flows()[i];
        d.add16("flow" + std::to_string(i) + "_external_port", f.external_port);
        d.add16("flow" + std::to_string(i) + "_internal_port", f.internal_port);
    }
    d.add("ipv4_header_start", {0x45, 0x00});
    d.add16("ipv4_flag_df", ipv4::kFlagDontFragment);
    d.add16("ipv4_flag_mf", ipv4::kFlagMoreFragments);
    d.add("arp_ethernet_ipv4", {0x00, 0x01, 0x08, 0x00, 0x06, 0x04});
    d.add("icmp_echo_request", {icmp::kEchoRequest, 0});
    d.add("icmp_port_unreachable", {icmp::kDestUnreachable, 3});
    d.add("icmp_frag_needed", {icmp::kDestUnreachable, icmp::kCodeFragmentationNeeded});
    d.add("icmp_time_exceeded", {icmp::kTimeExceeded, 0});
    d.add("tick", {PacketPathWorld::kTickTag});
    d.add("pcp_hold", {PacketPathWorld::kHoldTag});
    d.add("pcp_release", {PacketPathWorld::kReleaseTag});
    d.add("pcp_peer", {PacketPathWorld::kPeerTag});
    d.add("pcp_paired", {PacketPathWorld::kPairedTag});
    d.add("pcp_answer", {PacketPathWorld::kAnswerTag});
    d.add16("port_pcp", PacketPathWorld::kPcpPort);
    d.add16("port_pcp_client", 5350);
    d.add("pcp_map_request", {2, 1, 0, 0});
    d.add("pcp_filter_host", {31});  // a filter's length byte: /32
    d.add("pcp_ipv4_mapped", {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff});
    std::ofstream out(path, std::ios::trunc);
    out << d.text();
    if (!out) {
        std::fprintf(stderr, "cannot write %s\n", path.c_str());
        std::exit(1);
    }
}

}  // namespace
}  // namespace cgn::fuzz

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s CORPUS_DIRECTORY DICTIONARY_FILE\n", argv[0]);
        return 2;
    }
    cgn::fuzz::init_eal(argv[0]);
    cgn::fuzz::PacketPathWorld world(200);  // the seeds run in worlds of their own
    cgn::fuzz::write_seeds(world, argv[1]);
    cgn::fuzz::write_dictionary(world, argv[2]);
    return 0;
}
