// Every kind of PCP response the codec writes, decoded by Wireshark's Port Control Protocol
// dissector (tshark, Debian's package): an independent reading of the wire format. The
// responses go into a capture (libpcap) as UDP from port 5351, and tshark's fields must give
// back what was encoded.
#include <gtest/gtest.h>
#include <pcap/pcap.h>
#include <unistd.h>

#include <cstdio>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/packet_builder.hpp"
#include "control/pcp/codec.hpp"
#include "control/pcp/natpmp.hpp"
#include "control/pcp/server.hpp"
#include "tests/control/pcp/fake_nat.hpp"
#include "tests/control/pcp/pcp_test_util.hpp"

namespace cgn::ctl::pcp::test {
namespace {

// The fields compared, in this order (tshark -T fields, one line per frame).
const std::vector<std::string> kFields = {
    "portcontrol.version",
    "portcontrol.opcode",
    "portcontrol.result_code",
    "portcontrol.lifetime_rsp",
    "portcontrol.epoch_time",
    "portcontrol.map.nonce",
    "portcontrol.map.protocol",
    "portcontrol.map.internal_port",
    "portcontrol.map.rsp_assigned_external_port",
    "portcontrol.map.rsp_assigned_ext_ip",
    "portcontrol.peer.protocol",
    "portcontrol.peer.internal_port",
    "portcontrol.peer.rsp_assigned_external_port",
    "portcontrol.peer.remote_peer_port",
    "portcontrol.peer.remote_peer_ip",
    "portcontrol.option.code",
    "portcontrol.option.third_party.internal_ip",
    "portcontrol.option.filter.prefix_length",
    "portcontrol.option.filter.remote_peer_port",
    "portcontrol.option.filter.remote_peer_ip",
    "portcontrol.option.description",
    "portcontrol.option.portset.size",
    "portcontrol.option.portset.parity",
    // Wireshark 4.0 calls PORT_SET's second field "Assigned First Port" (first external port
    // in its field name); RFC 7753 §4 has the first internal port there, the MAP's external
    // port being the set's first.
    "portcontrol.option.portset.rsp_assigned_first_external_port",
};

using Fields = std::map<std::string, std::string>;

struct Case {
    std::string what;
    Response response;
    Fields expected;  // the fields that must have these values (others: anything)
};

// Writes the payloads as UDP from port 5351 in frames 1..n of a capture and returns tshark's
// `fields` per frame.
std::vector<Fields> through_tshark(const std::vector<std::vector<uint8_t>>& payloads,
                                   const std::vector<std::string>& fields) {
    const std::string path = unique_temp_path("cgn-pcp-tshark") + ".pcap";
    pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
    pcap_dumper_t* dump = pcap_dump_open(dead, path.c_str());
    EXPECT_NE(dump, nullptr) << pcap_geterr(dead);
    for (size_t i = 0; i < payloads.size(); ++i) {
        const auto& payload = payloads[i];
        const auto frame =
            common::PacketBuilder()
                .ethernet(*common::MacAddress::parse("02:00:00:00:00:01"),
                          *common::MacAddress::parse("02:00:00:00:00:11"))
                .ipv4(*common::Ipv4Address::parse("100.64.0.1"),
                      *common::Ipv4Address::parse("100.64.0.11"))
                .udp(kServerPort, kClientPort)
                .payload(payload)
                .build();
        pcap_pkthdr h{};
        h.ts.tv_sec = static_cast<time_t>(i + 1);
        h.caplen = h.len = static_cast<bpf_u_int32>(frame.size());
        pcap_dump(reinterpret_cast<u_char*>(dump), &h, frame.data());
    }
    pcap_dump_close(dump);
    pcap_close(dead);

    std::string command = "tshark -n -r " + std::string(path) +
                          " -T fields -E separator=/t -E occurrence=a -E aggregator=,";
    for (const auto& f : fields) command += " -e " + f;
    const std::string errors = path + ".stderr";
    command += " 2>" + errors;
    FILE* out = popen(command.c_str(), "r");
    std::vector<Fields> frames;
    std::string text;
    char buf[4096];
    while (out != nullptr && fgets(buf, sizeof buf, out) != nullptr) text += buf;
    const int rc = out != nullptr ? pclose(out) : -1;
    std::string complaints;
    if (FILE* e = fopen(errors.c_str(), "r")) {
        while (fgets(buf, sizeof buf, e) != nullptr) complaints += buf;
        fclose(e);
    }
    unlink(path.c_str());
    unlink(errors.c_str());
    EXPECT_EQ(rc, 0) << "tshark failed (deploy/install-deps.sh installs it):\n" << complaints;
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        Fields f;
        std::istringstream cols(line);
        std::string col;
        for (size_t k = 0; k < fields.size() && std::getline(cols, col, '\t'); ++k)
            if (!col.empty()) f[fields[k]] = col;
        frames.push_back(f);
    }
    return frames;
}

MapData map_data() {
    MapData m;
    m.nonce = nonce_1_to_12();
    m.protocol = 6;
    m.internal_port = 8080;
    m.external_port = 15000;
    m.external_address = v4("198.51.100.1");
    return m;
}

std::vector<Case> cases() {
    std::vector<Case> out;
    {
        Case c{"MAP success", {}, {}};
        c.response.opcode = Opcode::map;
        c.response.lifetime = 7200;
        c.response.epoch = 42;
        c.response.map = map_data();
        c.expected = {{"portcontrol.version", "2"},
                      {"portcontrol.opcode", "1"},
                      {"portcontrol.result_code", "0"},
                      {"portcontrol.lifetime_rsp", "7200"},
                      {"portcontrol.epoch_time", "42"},
                      {"portcontrol.map.nonce", "0102030405060708090a0b0c"},
                      {"portcontrol.map.protocol", "6"},
                      {"portcontrol.map.internal_port", "8080"},
                      {"portcontrol.map.rsp_assigned_external_port", "15000"},
                      {"portcontrol.map.rsp_assigned_ext_ip", "::ffff:198.51.100.1"}};
        out.push_back(c);
    }
    {
        Case c{"MAP with every option", {}, {}};
        c.response.opcode = Opcode::map;
        c.response.lifetime = 600;
        c.response.epoch = 43;
        c.response.map = map_data();
        Options& o = c.response.options;
        o.third_party = v4("100.64.0.12");
        o.prefer_failure = true;
        o.filters = {Filter{120, 0, v4("203.0.113.0")}, Filter{128, 443, v4("192.0.2.20")}};
        o.description = "web server";
        o.port_set = PortSet{16, 8080, true};
        c.expected = {{"portcontrol.option.code", "1,2,3,3,128,130"},
                      {"portcontrol.option.third_party.internal_ip", "::ffff:100.64.0.12"},
                      {"portcontrol.option.filter.prefix_length", "120,128"},
                      {"portcontrol.option.filter.remote_peer_port", "0,443"},
                      {"portcontrol.option.filter.remote_peer_ip",
                       "::ffff:203.0.113.0,::ffff:192.0.2.20"},
                      {"portcontrol.option.description", "web server"},
                      {"portcontrol.option.portset.size", "16"},
                      {"portcontrol.option.portset.parity", "1"}};
        out.push_back(c);
    }
    {
        Case c{"PEER success", {}, {}};
        c.response.opcode = Opcode::peer;
        c.response.lifetime = 120;
        c.response.epoch = 44;
        PeerData p;
        static_cast<MapData&>(p) = map_data();
        p.protocol = 17;
        p.internal_port = 40000;
        p.remote_port = 53;
        p.remote_address = v4("203.0.113.10");
        c.response.peer = p;
        c.response.options.description = "dns";
        c.expected = {{"portcontrol.opcode", "2"},
                      {"portcontrol.peer.protocol", "17"},
                      {"portcontrol.peer.internal_port", "40000"},
                      {"portcontrol.peer.rsp_assigned_external_port", "15000"},
                      {"portcontrol.peer.remote_peer_port", "53"},
                      {"portcontrol.peer.remote_peer_ip", "::ffff:203.0.113.10"},
                      {"portcontrol.option.description", "dns"}};
        out.push_back(c);
    }
    {
        Case c{"ANNOUNCE", {}, {}};
        c.response.epoch = 45;
        c.expected = {{"portcontrol.opcode", "0"}, {"portcontrol.epoch_time", "45"}};
        out.push_back(c);
    }
    for (unsigned code = 1; code < kResultCodes; ++code) {
        Case c{std::string("MAP error ") + std::string(to_string(static_cast<ResultCode>(code))),
               {},
               {}};
        c.response.opcode = Opcode::map;
        c.response.result = static_cast<ResultCode>(code);
        c.response.lifetime = error_lifetime(c.response.result);
        c.response.epoch = 46;
        c.response.map = map_data();
        c.expected = {{"portcontrol.result_code", std::to_string(code)},
                      {"portcontrol.lifetime_rsp", std::to_string(c.response.lifetime)}};
        out.push_back(c);
    }
    return out;
}

void expect_fields(const std::vector<Case>& all, const std::vector<Fields>& frames) {
    ASSERT_EQ(frames.size(), all.size());
    for (size_t i = 0; i < all.size(); ++i)
        for (const auto& [field, value] : all[i].expected) {
            const auto it = frames[i].find(field);
            EXPECT_TRUE(it != frames[i].end() && it->second == value)
                << all[i].what << ": " << field << " is '"
                << (it == frames[i].end() ? "(absent)" : it->second) << "', expected '" << value
                << "'";
        }
}

TEST(PcpTshark, EveryResponseDecodesInWiresharksDissectorWithItsFields) {
    const auto all = cases();
    std::vector<std::vector<uint8_t>> payloads;
    for (const Case& c : all) {
        std::vector<uint8_t> p(kMaxMessage);
        p.resize(encode_response(c.response, p));
        EXPECT_FALSE(p.empty()) << c.what;
        payloads.push_back(p);
    }
    expect_fields(all, through_tshark(payloads, kFields));
}

// The answer the PCP server (control/pcp/server.cpp) gives a MAP with PORT_SET (RFC 7753),
// as Wireshark reads it: the set's size, its first internal port, the P bit, and the MAP's
// external port the set's first. Without PORT_SET served, the answer has no PORT_SET (the
// portset fields are absent and option.code is empty).
TEST(PcpTshark, APortSetAnswerOfTheServerDecodesWithItsFields) {
    common::ManualClock clock;
    FakeNat nat;
    ServerSettings settings;
    settings.subscribers = {*common::Ipv4Prefix::parse("100.64.0.0/10")};
    Server server(settings, nat, clock);
    Request request = map_request(kSub1, 17, 5000, 600);
    request.options.port_set = PortSet{4, 5000, true};
    const Outcome out = serve_now(server, Received{kSub1, kClientPort, encoded_request(request)});
    ASSERT_FALSE(out.reply.empty()) << out.dropped;
    const std::vector<Case> all = {
        {"MAP answer with PORT_SET",
         {},
         {{"portcontrol.opcode", "1"},
          {"portcontrol.result_code", "0"},
          {"portcontrol.map.internal_port", "5000"},
          {"portcontrol.map.rsp_assigned_external_port", "20000"},
          {"portcontrol.map.rsp_assigned_ext_ip", "::ffff:198.51.100.1"},
          {"portcontrol.option.code", "130"},
          {"portcontrol.option.portset.size", "4"},
          {"portcontrol.option.portset.rsp_assigned_first_external_port", "5000"},
          {"portcontrol.option.portset.parity", "1"}}}};
    expect_fields(all, through_tshark({out.reply}, kFields));
}

// The NAT-PMP answers (RFC 6886) in Wireshark's NAT-PMP dissector.
TEST(PcpTshark, NatPmpResponsesDecodeInWiresharksDissector) {
    const std::vector<std::string> fields = {"nat-pmp.version",     "nat-pmp.opcode",
                                             "nat-pmp.result_code", "nat-pmp.sssoe",
                                             "nat-pmp.external_ip", "nat-pmp.internal_port",
                                             "nat-pmp.external_port", "nat-pmp.pml"};
    std::vector<std::vector<uint8_t>> payloads(3, std::vector<uint8_t>(16));
    payloads[0].resize(natpmp::encode_address_response(natpmp::ResultCode::success, 77,
                                                       0xc6336401, payloads[0]));
    payloads[1].resize(natpmp::encode_map_response(natpmp::Opcode::map_tcp,
                                                   natpmp::ResultCode::success, 78, 8080, 15000,
                                                   3600, payloads[1]));
    payloads[2].resize(natpmp::encode_map_response(natpmp::Opcode::map_udp,
                                                   natpmp::ResultCode::out_of_resources, 79,
                                                   5000, 0, 0, payloads[2]));
    std::vector<Case> all(3);
    all[0] = {"NAT-PMP address", {}, {{"nat-pmp.version", "0"}, {"nat-pmp.opcode", "128"},
                                       {"nat-pmp.result_code", "0"}, {"nat-pmp.sssoe", "77"},
                                       {"nat-pmp.external_ip", "198.51.100.1"}}};
    all[1] = {"NAT-PMP map TCP", {}, {{"nat-pmp.opcode", "130"}, {"nat-pmp.internal_port", "8080"},
                                       {"nat-pmp.external_port", "15000"},
                                       {"nat-pmp.pml", "3600"}}};
    all[2] = {"NAT-PMP map UDP refused", {}, {{"nat-pmp.opcode", "129"},
                                              {"nat-pmp.result_code", "4"},
                                              {"nat-pmp.sssoe", "79"}}};
    expect_fields(all, through_tshark(payloads, fields));
}

}  // namespace
}  // namespace cgn::ctl::pcp::test
