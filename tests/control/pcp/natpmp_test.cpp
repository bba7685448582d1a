// The NAT-PMP codec (control/pcp/natpmp.hpp), from RFC 6886 §3's figures.
#include "control/pcp/natpmp.hpp"

#include <gtest/gtest.h>

#include "tests/control/pcp/pcp_test_util.hpp"

namespace cgn::ctl::natpmp {
namespace {

using pcp::test::Bytes;
using pcp::test::hex;
using pcp::test::to_hex;

TEST(NatPmpCodec, MapRequestFieldsFromTheirGoldenBytes) {
    // §3.3: version 0, opcode 2 (TCP), reserved, internal 8080, suggested 8081, 7200 s.
    const Decoded d = decode_request(hex("00 02 0000 1f90 1f91 00001c20"));
    ASSERT_EQ(d.kind, Decoded::Kind::request) << d.reason;
    EXPECT_EQ(d.request.opcode, Opcode::map_tcp);
    EXPECT_EQ(d.request.internal_port, 8080);
    EXPECT_EQ(d.request.suggested_port, 8081);
    EXPECT_EQ(d.request.lifetime, 7200u);
    Bytes out(16);
    out.resize(encode_request(d.request, out));
    EXPECT_EQ(to_hex(out), to_hex(hex("00 02 0000 1f90 1f91 00001c20")));
}

TEST(NatPmpCodec, ResponsesInTheirGoldenBytes) {
    Bytes out(16);
    out.resize(encode_address_response(ResultCode::success, 9, 0xc6336401, out));
    EXPECT_EQ(to_hex(out), to_hex(hex("00 80 0000 00000009 c6336401")));
    out.resize(16);
    out.resize(encode_map_response(Opcode::map_udp, ResultCode::out_of_resources, 9, 5000, 0, 0, out));
    EXPECT_EQ(to_hex(out), to_hex(hex("00 81 0004 00000009 1388 0000 00000000")));
    const auto r = decode_response(out);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->result, ResultCode::out_of_resources);
    EXPECT_EQ(r->internal_port, 5000);
}

TEST(NatPmpCodec, WhatIsNotARequestIsDroppedOrReturned) {
    EXPECT_EQ(decode_request(hex("00")).kind, Decoded::Kind::drop);
    EXPECT_EQ(decode_request(hex("00 81 0000")).kind, Decoded::Kind::drop) << "a response";
    EXPECT_EQ(decode_request(hex("00 01 0000 1388")).kind, Decoded::Kind::drop) << "cut short";
    EXPECT_EQ(decode_request(hex("02 00")).kind, Decoded::Kind::drop) << "PCP, not NAT-PMP";
    const Decoded d = decode_request(hex("00 7f 0000"));
    EXPECT_EQ(d.kind, Decoded::Kind::error);
    EXPECT_EQ(d.error, ResultCode::unsupported_opcode);
    Bytes out(16);
    out.resize(encode_unsupported_opcode(hex("00 7f 0000"), out));
    EXPECT_EQ(to_hex(out), to_hex(hex("00 ff 0005")));
}

}  // namespace
}  // namespace cgn::ctl::natpmp
