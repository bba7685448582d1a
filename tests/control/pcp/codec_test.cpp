// The PCP codec (control/pcp/codec.hpp): golden byte vectors written from the RFC's figures
// (not from the codec), every error of request parsing with its result code, round trips.
#include "control/pcp/codec.hpp"

#include <gtest/gtest.h>

#include <random>

#include "tests/control/pcp/pcp_test_util.hpp"

namespace cgn::ctl::pcp::test {
namespace {

// RFC 6887 §7.1 + §11.1: MAP from 100.64.0.11 for TCP port 8080, lifetime 7200 s, no
// suggestion (the IPv4 all-zeros address ::ffff:0.0.0.0, port 0).
const Bytes kMapRequest = hex(
    "02 01 0000"                              // version 2, R=0 opcode MAP, reserved
    "00001c20"                                // requested lifetime 7200
    "00000000 00000000 0000ffff 6440000b"     // client ::ffff:100.64.0.11
    "01020304 05060708 090a0b0c"              // mapping nonce
    "06 000000"                               // protocol TCP, reserved
    "1f90 0000"                               // internal port 8080, suggested external 0
    "00000000 00000000 0000ffff 00000000");   // suggested external ::ffff:0.0.0.0

// §7.2 + §11.1: its success response: 198.51.100.1:15000, lifetime 7200, epoch 42.
const Bytes kMapResponse = hex(
    "02 81 00 00"                             // version, R=1 MAP, reserved, SUCCESS
    "00001c20 0000002a"                       // lifetime 7200, epoch time 42
    "00000000 00000000 00000000"              // reserved
    "01020304 05060708 090a0b0c"
    "06 000000"
    "1f90 3a98"                               // internal 8080, assigned external 15000
    "00000000 00000000 0000ffff c6336401");   // assigned ::ffff:198.51.100.1

// §12.1: PEER for a UDP flow 100.64.0.11:40000 -> 203.0.113.10:53.
const Bytes kPeerRequest = hex(
    "02 02 0000 00000078"                     // PEER, lifetime 120
    "00000000 00000000 0000ffff 6440000b"
    "01020304 05060708 090a0b0c"
    "11 000000 9c40 0000"                     // UDP, internal 40000, suggested external 0
    "00000000 00000000 0000ffff 00000000"
    "0035 0000"                               // remote peer port 53, reserved
    "00000000 00000000 0000ffff cb00710a");   // remote peer ::ffff:203.0.113.10

// §14.1: ANNOUNCE, lifetime 0, header only.
const Bytes kAnnounceRequest = hex(
    "02 00 0000 00000000 00000000 00000000 0000ffff 6440000b");

MapData map_8080() {
    MapData m;
    m.nonce = nonce_1_to_12();
    m.protocol = 6;
    m.internal_port = 8080;
    m.external_address = IpAddress::ipv4_any();
    return m;
}

Request decoded(const Bytes& b) {
    const Decoded d = decode_request(b);
    EXPECT_EQ(d.kind, Decoded::Kind::request) << d.reason;
    return d.request;
}

Bytes encoded(const Response& r) {
    Bytes out(kMaxMessage);
    out.resize(encode_response(r, out));
    return out;
}

Bytes encoded(const Request& r) {
    Bytes out(kMaxMessage);
    out.resize(encode_request(r, out));
    return out;
}

TEST(PcpCodec, MapRequestDecodesFromItsGoldenBytes) {
    const Request r = decoded(kMapRequest);
    EXPECT_EQ(r.version, 2);
    EXPECT_EQ(r.opcode, Opcode::map);
    EXPECT_EQ(r.lifetime, 7200u);
    EXPECT_EQ(r.client_address, v4("100.64.0.11"));
    ASSERT_TRUE(r.map.has_value());
    EXPECT_FALSE(r.peer.has_value());
    EXPECT_EQ(*r.map, map_8080());
    EXPECT_EQ(r.options, Options{});
    EXPECT_EQ(encoded(r), kMapRequest) << "and encodes back to the same bytes";
}

TEST(PcpCodec, MapResponseEncodesToItsGoldenBytes) {
    Response r;
    r.opcode = Opcode::map;
    r.lifetime = 7200;
    r.epoch = 42;
    r.map = map_8080();
    r.map->external_port = 15000;
    r.map->external_address = v4("198.51.100.1");
    EXPECT_EQ(to_hex(encoded(r)), to_hex(kMapResponse));
    EXPECT_EQ(decode_response(kMapResponse), std::optional<Response>(r));
}

TEST(PcpCodec, PeerRequestDecodesFromItsGoldenBytes) {
    const Request r = decoded(kPeerRequest);
    EXPECT_EQ(r.opcode, Opcode::peer);
    EXPECT_EQ(r.lifetime, 120u);
    ASSERT_TRUE(r.peer.has_value());
    EXPECT_FALSE(r.map.has_value());
    EXPECT_EQ(r.peer->protocol, 17);
    EXPECT_EQ(r.peer->internal_port, 40000);
    EXPECT_EQ(r.peer->remote_port, 53);
    EXPECT_EQ(r.peer->remote_address, v4("203.0.113.10"));
    EXPECT_EQ(r.peer->remote_address.to_string(), "203.0.113.10");
    EXPECT_EQ(encoded(r), kPeerRequest);
}

TEST(PcpCodec, AnnounceIsAHeaderAlone) {
    const Request r = decoded(kAnnounceRequest);
    EXPECT_EQ(r.opcode, Opcode::announce);
    EXPECT_FALSE(r.map || r.peer);
    EXPECT_EQ(encoded(r), kAnnounceRequest);
    Response a;
    a.epoch = 7;
    EXPECT_EQ(to_hex(encoded(a)),
              to_hex(hex("02 80 00 00 00000000 00000007 00000000 00000000 00000000")));
}

// Every option of a MAP, from the RFCs' figures: THIRD_PARTY (§13.1), PREFER_FAILURE
// (§13.2), two FILTERs (§13.3), DESCRIPTION (RFC 7220 §3, "web": padded with one zero), PORT_SET
// (RFC 7753 §4: 16 ports from 8080, parity; length 5, padded with three zeros).
const Bytes kMapOptions = hex(
    "01 00 0010 00000000 00000000 0000ffff 6440000c"  // THIRD_PARTY ::ffff:100.64.0.12
    "02 00 0000"                                       // PREFER_FAILURE
    "03 00 0014 00 78 0000 00000000 00000000 0000ffff cb007100"  // FILTER 203.0.113.0/24
    "03 00 0014 00 80 01bb 00000000 00000000 0000ffff c0000214"  // FILTER 192.0.2.20/32:443
    "80 00 0003 776562 00"                             // DESCRIPTION "web"
    "82 00 0005 0010 1f90 01 000000");                 // PORT_SET 16 from 8080, parity

TEST(PcpCodec, EveryOptionDecodesFromItsGoldenBytesAndBack) {
    Bytes packet = kMapRequest;
    packet.insert(packet.end(), kMapOptions.begin(), kMapOptions.end());
    const Request r = decoded(packet);
    const Options& o = r.options;
    EXPECT_EQ(o.third_party, std::optional<IpAddress>(v4("100.64.0.12")));
    EXPECT_TRUE(o.prefer_failure);
    ASSERT_EQ(o.filters.size(), 2u);
    EXPECT_EQ(o.filters[0], (Filter{120, 0, v4("203.0.113.0")}));
    EXPECT_EQ(o.filters[1], (Filter{128, 443, v4("192.0.2.20")}));
    EXPECT_EQ(o.description, std::optional<std::string>("web"));
    EXPECT_EQ(o.port_set, std::optional<PortSet>(PortSet{16, 8080, true}));
    EXPECT_TRUE(o.ignored.empty());
    EXPECT_EQ(to_hex(encoded(r)), to_hex(packet));
}

TEST(PcpCodec, PeerCarriesThirdPartyAndDescription) {
    Bytes packet = kPeerRequest;
    const Bytes options = hex(
        "01 00 0010 00000000 00000000 0000ffff 6440000c"
        "80 00 0008 766f69702d727470");  // "voip-rtp", 8 octets: no padding
    packet.insert(packet.end(), options.begin(), options.end());
    const Request r = decoded(packet);
    EXPECT_EQ(r.options.description, std::optional<std::string>("voip-rtp"));
    EXPECT_EQ(r.options.third_party, std::optional<IpAddress>(v4("100.64.0.12")));
    EXPECT_EQ(encoded(r), packet);
}

// An unknown option in the optional-to-process range (128-255) is skipped, and named.
TEST(PcpCodec, UnknownOptionalOptionsAreSkipped) {
    Bytes packet = kMapRequest;
    const Bytes options = hex("c8 00 0002 abcd 0000  80 00 0001 78 000000");
    packet.insert(packet.end(), options.begin(), options.end());
    const Request r = decoded(packet);
    EXPECT_EQ(r.options.ignored, (std::vector<uint8_t>{0xc8}));
    EXPECT_EQ(r.options.description, std::optional<std::string>("x"));
}

// §8.3's checks in order, and each option rule: the result code and the reason.
struct BadRequest {
    const char* what;
    Bytes packet;
    Decoded::Kind kind;
    ResultCode code;
};

Bytes with(Bytes base, std::string_view extra) {
    const Bytes e = hex(extra);
    base.insert(base.end(), e.begin(), e.end());
    return base;
}
Bytes padded_to(Bytes b, size_t n) {
    b.resize(n, 0);
    return b;
}
void PrintTo(const BadRequest& c, std::ostream* os) { *os << c.what; }
Bytes changed(Bytes b, size_t at, uint8_t value) {
    b.at(at) = value;
    return b;
}

class PcpCodecErrors : public testing::TestWithParam<BadRequest> {};

TEST_P(PcpCodecErrors, AreRefusedWithTheRightCode) {
    const BadRequest& c = GetParam();
    const Decoded d = decode_request(c.packet);
    EXPECT_EQ(d.kind, c.kind) << c.what << ": " << d.reason;
    if (c.kind == Decoded::Kind::error) {
        EXPECT_EQ(d.error, c.code) << c.what << ": " << d.reason;
    }
    EXPECT_FALSE(d.reason.empty());
}

constexpr auto kDrop = Decoded::Kind::drop;
constexpr auto kError = Decoded::Kind::error;

INSTANTIATE_TEST_SUITE_P(
    All, PcpCodecErrors,
    testing::Values(
        BadRequest{"one octet (§8.3: silently dropped)", hex("02"), kDrop, {}},
        BadRequest{"empty", Bytes{}, kDrop, {}},
        BadRequest{"R bit set: a response (§8.3)", kMapResponse, kDrop, {}},
        BadRequest{"version 1 (§9)", changed(kMapRequest, 0, 1), kError,
                   ResultCode::unsupp_version},
        BadRequest{"version 3, 2 octets", hex("03 01"), kError, ResultCode::unsupp_version},
        BadRequest{"version 2 but shorter than the header", hex("02 01 0000 00001c20"), kDrop, {}},
        BadRequest{"longer than 1100 octets (§7)", padded_to(kMapRequest, 1104), kError,
                   ResultCode::malformed_request},
        BadRequest{"not a multiple of 4 (§7)", with(kMapRequest, "00"), kError,
                   ResultCode::malformed_request},
        BadRequest{"unknown opcode 5", changed(kAnnounceRequest, 1, 5), kError,
                   ResultCode::unsupp_opcode},
        BadRequest{"MAP without its data", changed(kAnnounceRequest, 1, 1), kError,
                   ResultCode::malformed_request},
        BadRequest{"PEER with only MAP's data", changed(kMapRequest, 1, 2), kError,
                   ResultCode::malformed_request},
        BadRequest{"THIRD_PARTY's data cut short",
                   with(kMapRequest, "01 00 0010 00000000 00000000"), kError,
                   ResultCode::malformed_option},
        BadRequest{"option runs past the end", with(kMapRequest, "80 00 0009 41424344 45464748"),
                   kError, ResultCode::malformed_option},
        BadRequest{"unknown mandatory option 0x7f (§7.3)", with(kMapRequest, "7f 00 0000"),
                   kError, ResultCode::unsupp_option},
        BadRequest{"option code 0 (reserved, mandatory range)", with(kMapRequest, "00 00 0000"),
                   kError, ResultCode::unsupp_option},
        BadRequest{"THIRD_PARTY of 4 octets", with(kMapRequest, "01 00 0004 6440000c"), kError,
                   ResultCode::malformed_option},
        BadRequest{"THIRD_PARTY twice",
                   with(kMapRequest,
                        "01 00 0010 00000000 00000000 0000ffff 6440000c"
                        "01 00 0010 00000000 00000000 0000ffff 6440000d"),
                   kError, ResultCode::malformed_option},
        BadRequest{"PREFER_FAILURE with data", with(kMapRequest, "02 00 0004 00000000"), kError,
                   ResultCode::malformed_option},
        BadRequest{"PREFER_FAILURE twice", with(kMapRequest, "02 00 0000 02 00 0000"), kError,
                   ResultCode::malformed_option},
        BadRequest{"PREFER_FAILURE on PEER (MAP only, §13.2)", with(kPeerRequest, "02 00 0000"),
                   kError, ResultCode::malformed_request},
        BadRequest{"FILTER on PEER (MAP only, §13.3)",
                   with(kPeerRequest, "03 00 0014 00 78 0000 00000000 00000000 0000ffff cb007100"),
                   kError, ResultCode::malformed_request},
        BadRequest{"THIRD_PARTY on ANNOUNCE",
                   with(kAnnounceRequest, "01 00 0010 00000000 00000000 0000ffff 6440000c"),
                   kError, ResultCode::malformed_request},
        BadRequest{"FILTER of 16 octets",
                   with(kMapRequest, "03 00 0010 00000000 00000000 0000ffff cb007100"), kError,
                   ResultCode::malformed_option},
        BadRequest{"FILTER /96 on an IPv4 address (erratum 3891: 97-128)",
                   with(kMapRequest, "03 00 0014 00 60 0000 00000000 00000000 0000ffff cb007100"),
                   kError, ResultCode::malformed_option},
        BadRequest{"FILTER prefix 129",
                   with(kMapRequest, "03 00 0014 00 81 0000 20010db8 00000000 00000000 00000001"),
                   kError, ResultCode::malformed_option},
        BadRequest{"DESCRIPTION not UTF-8", with(kMapRequest, "80 00 0002 c328 0000"), kError,
                   ResultCode::malformed_option},
        BadRequest{"DESCRIPTION with an overlong NUL", with(kMapRequest, "80 00 0002 c080 0000"),
                   kError, ResultCode::malformed_option},
        BadRequest{"DESCRIPTION twice", with(kMapRequest, "80 00 0001 61 000000 80 00 0001 62 000000"),
                   kError, ResultCode::malformed_option},
        BadRequest{"PORT_SET of size 0 (RFC 7753 §4)", with(kMapRequest, "82 00 0005 0000 1f90 00 000000"),
                   kError, ResultCode::malformed_option},
        BadRequest{"PORT_SET of 4 octets", with(kMapRequest, "82 00 0004 0010 1f90"), kError,
                   ResultCode::malformed_option},
        BadRequest{"PORT_SET on PEER", with(kPeerRequest, "82 00 0005 0010 1f90 00 000000"),
                   kError, ResultCode::malformed_request}),
    [](const testing::TestParamInfo<BadRequest>& info) { return "case" + std::to_string(info.index); });

// A request of exactly 1100 octets is fine (options up to the limit); the error answer to a
// longer one is cut to 1100 (§8.3).
TEST(PcpCodec, ElevenHundredOctetsIsTheLimit) {
    Bytes packet = kMapRequest;  // 60 octets, then 130 optional options of 8: 1100
    while (packet.size() < kMaxMessage) packet = with(packet, "c8 00 0004 00000000");
    ASSERT_EQ(packet.size(), kMaxMessage);
    const Decoded d = decode_request(packet);
    EXPECT_EQ(d.kind, Decoded::Kind::request) << d.reason;
    EXPECT_EQ(d.request.options.ignored.size(), 130u);
    const Bytes longer = with(packet, "c9 00 0000");
    EXPECT_EQ(decode_request(longer).error, ResultCode::malformed_request);
    Bytes out(kMaxMessage);
    EXPECT_EQ(encode_error(longer, ResultCode::malformed_request, 1800, 9, out), kMaxMessage)
        << "the answer is cut to 1100 octets";
}

// §7.3/§8.3: the error answer is the request with the response header written over it.
TEST(PcpCodec, AnErrorResponseIsTheRequestWithAResponseHeader) {
    Bytes out(kMaxMessage);
    const size_t n = encode_error(kMapRequest, ResultCode::user_ex_quota, 30, 42, out);
    out.resize(n);
    Bytes expected = kMapRequest;
    const Bytes header = hex("02 81 00 0a 0000001e 0000002a 00000000 00000000 00000000");
    std::copy(header.begin(), header.end(), expected.begin());
    EXPECT_EQ(to_hex(out), to_hex(expected));
    const auto r = decode_response(out);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->result, ResultCode::user_ex_quota);
    EXPECT_EQ(r->map, std::optional<MapData>(map_8080()));
}

// An error answer copies the request, options it could not parse included: a client still
// reads the result code (and leaves the options).
TEST(PcpCodec, AnErrorAnswerWithTheRequestsBadOptionsStillDecodes) {
    const Bytes bad = with(kMapRequest, "7f 00 0004 00000000");
    ASSERT_EQ(decode_request(bad).error, ResultCode::unsupp_option);
    Bytes out(kMaxMessage);
    out.resize(encode_error(bad, ResultCode::unsupp_option, 1800, 3, out));
    const auto r = decode_response(out);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->result, ResultCode::unsupp_option);
    EXPECT_EQ(r->map, std::optional<MapData>(map_8080()));
    Bytes success = out;
    success[3] = 0;
    EXPECT_FALSE(decode_response(with(Bytes(success.begin(), success.end() - 8), "01 00 0010 00000000")))
        << "a success answer must be well formed";
}

// §9: a version-1 (or NAT-PMP-sized) request gets a 24-octet UNSUPP_VERSION in version 2.
TEST(PcpCodec, UnsupportedVersionIsAnsweredInVersionTwo) {
    Bytes out(kMaxMessage);
    const size_t n = encode_error(hex("01 01"), ResultCode::unsupp_version, 1800, 5, out);
    out.resize(n);
    EXPECT_EQ(to_hex(out),
              to_hex(hex("02 81 00 01 00000708 00000005 00000000 00000000 00000000")));
}

TEST(PcpCodec, LifetimesOfErrors) {
    for (ResultCode c : {ResultCode::unsupp_version, ResultCode::not_authorized,
                         ResultCode::malformed_request, ResultCode::unsupp_opcode,
                         ResultCode::unsupp_option, ResultCode::malformed_option,
                         ResultCode::unsupp_protocol, ResultCode::address_mismatch})
        EXPECT_EQ(error_lifetime(c), 1800u) << to_string(c);
    for (ResultCode c : {ResultCode::network_failure, ResultCode::no_resources,
                         ResultCode::user_ex_quota, ResultCode::cannot_provide_external,
                         ResultCode::excessive_remote_peers})
        EXPECT_EQ(error_lifetime(c), 30u) << to_string(c);
}

TEST(PcpCodec, EveryResultCodeRoundTrips) {
    for (unsigned c = 0; c < kResultCodes; ++c) {
        Response r;
        r.opcode = Opcode::map;
        r.result = static_cast<ResultCode>(c);
        r.lifetime = error_lifetime(r.result);
        r.map = map_8080();
        const Bytes b = encoded(r);
        ASSERT_EQ(b.size(), kHeaderSize + kMapSize);
        EXPECT_EQ(b[3], c);
        EXPECT_EQ(decode_response(b), std::optional<Response>(r)) << to_string(r.result);
    }
    EXPECT_EQ(to_string(ResultCode::excessive_remote_peers), "EXCESSIVE_REMOTE_PEERS");
    EXPECT_EQ(to_string(ResultCode::user_ex_quota), "USER_EX_QUOTA");
}

TEST(PcpCodec, ResponsesThatAreNotPcpResponsesDecodeToNothing) {
    std::string why;
    EXPECT_FALSE(decode_response(kMapRequest, &why));
    EXPECT_EQ(why, "R bit clear (a request)");
    EXPECT_FALSE(decode_response(hex("02 81 00 00"), &why));
    EXPECT_FALSE(decode_response(changed(kMapResponse, 3, 200), &why));
    EXPECT_EQ(why, "unknown result code");
    Bytes cut(kMapResponse.begin(), kMapResponse.begin() + 40);
    EXPECT_FALSE(decode_response(cut, &why));
}

// A response whose options do not fit in 1100 octets is not written (the server answers with
// an error instead, §7.3).
TEST(PcpCodec, AResponseTooLongForElevenHundredOctetsIsRefused) {
    Response r;
    r.opcode = Opcode::map;
    r.map = map_8080();
    r.options.description = std::string(1100, 'a');
    Bytes out(kMaxMessage);
    EXPECT_EQ(encode_response(r, out), 0u);
    r.options.description = std::string(kMaxMessage - kHeaderSize - kMapSize - 4, 'a');
    EXPECT_EQ(encode_response(r, out), kMaxMessage);
}

// Random requests and responses: encode then decode gives the value back.
TEST(PcpCodec, RandomMessagesRoundTrip) {
    std::mt19937 random(20261202);
    auto byte = [&] { return static_cast<uint8_t>(random()); };
    auto address = [&] {
        IpAddress a;
        if (random() % 2) return IpAddress::from_ipv4(common::Ipv4Address{static_cast<uint32_t>(random())});
        for (auto& b : a.bytes) b = byte();
        return a;
    };
    for (int i = 0; i < 2000; ++i) {
        Request r;
        r.opcode = static_cast<Opcode>(random() % 3);
        r.lifetime = static_cast<uint32_t>(random());
        r.client_address = address();
        MapData m;
        for (auto& b : m.nonce) b = byte();
        m.protocol = byte();
        m.internal_port = static_cast<uint16_t>(random());
        m.external_port = static_cast<uint16_t>(random());
        m.external_address = address();
        if (r.opcode == Opcode::map) r.map = m;
        if (r.opcode == Opcode::peer) {
            PeerData p;
            static_cast<MapData&>(p) = m;
            p.remote_port = static_cast<uint16_t>(random());
            p.remote_address = address();
            r.peer = p;
        }
        if (r.opcode != Opcode::announce) {
            if (random() % 2) r.options.third_party = address();
            if (random() % 2) r.options.description = std::string(random() % 40, 'd');
        }
        if (r.opcode == Opcode::map) {
            r.options.prefer_failure = random() % 2;
            for (unsigned f = random() % 4; f > 0; --f)
                r.options.filters.push_back(
                    Filter{static_cast<uint8_t>(97 + random() % 32), static_cast<uint16_t>(random()),
                           IpAddress::from_ipv4(common::Ipv4Address{static_cast<uint32_t>(random())})});
            if (random() % 2)
                r.options.port_set = PortSet{static_cast<uint16_t>(1 + random() % 1000),
                                             static_cast<uint16_t>(random()), random() % 2 == 1};
        }
        const Bytes b = encoded(r);
        ASSERT_FALSE(b.empty());
        ASSERT_EQ(b.size() % 4, 0u);
        const Decoded d = decode_request(b);
        ASSERT_EQ(d.kind, Decoded::Kind::request) << d.reason << " " << to_hex(b);
        ASSERT_EQ(d.request, r) << to_hex(b);

        Response resp;
        resp.opcode = r.opcode;
        resp.result = static_cast<ResultCode>(random() % kResultCodes);
        resp.lifetime = static_cast<uint32_t>(random());
        resp.epoch = static_cast<uint32_t>(random());
        resp.map = r.map;
        resp.peer = r.peer;
        resp.options = r.options;
        ASSERT_EQ(decode_response(encoded(resp)), std::optional<Response>(resp));
    }
}

}  // namespace
}  // namespace cgn::ctl::pcp::test
