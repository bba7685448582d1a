// PCP through the dataplane (control/pcp_transport.hpp): a subscriber's MAP and NAT-PMP
// requests, real frames to the inside address's port 5351, taken by the worker, served by the
// PCP service on the control side, answered as frames out of the inside port. The NAT behind
// the service is the PCP tests' stand-in (cgnd's own is not written yet).

#include "control/pcp_transport.hpp"

#include <gtest/gtest.h>
#include <rte_ring.h>

#include "common/byte_order.hpp"
#include "common/headers.hpp"
#include "common/packet_builder.hpp"
#include "control/pcp/natpmp.hpp"
#include "tests/control/pcp/fake_nat.hpp"
#include "tests/control/pcp/pcp_test_util.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::test {
namespace {

using common::Counter;
using common::PacketBuilder;
namespace pcp = ctl::pcp;

class PcpThroughTheDataplane : public testing::Test {
protected:
    PcpThroughTheDataplane()
        : requests_(rte_ring_create("pcptq", 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ)),
          answers_(rte_ring_create("pcpta", 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ)),
          server_(settings(), nat_, clock_),
          service_(server_, nullptr, clock_) {
        h_.settings().pcp_requests = requests_;
        h_.settings().pcp_answers = answers_;
        h_.start();
        h_.reset_counters();
        transport_ = std::make_unique<ctl::PcpDataplaneTransport>(
            std::vector<ctl::PcpDataplaneTransport::WorkerRings>{{requests_, answers_}}, h_.pool(),
            h_.inside().mac());
    }
    ~PcpThroughTheDataplane() override {
        transport_.reset();
        rte_ring_free(requests_);
        rte_ring_free(answers_);
    }
    static pcp::ServerSettings settings() {
        pcp::ServerSettings s;
        s.subscribers = {*common::Ipv4Prefix::parse("100.64.0.0/10")};
        return s;
    }
    Frame request_frame(const std::vector<uint8_t>& payload) {
        const Topology& t = h_.topo();
        return PacketBuilder()
            .ethernet(t.subscriber1_mac, h_.inside().mac())
            .ipv4(t.subscriber1, t.inside.address, 64, 11)
            .udp(5350, 5351)
            .payload(payload)
            .build();
    }
    // Sends the request through the worker and the service; returns what left the inside port.
    std::vector<Frame> round_trip(const std::vector<uint8_t>& payload) {
        h_.inside().inject(request_frame(payload));
        h_.poll();
        EXPECT_EQ(transport_->serve_once(service_, 64), 1u);
        h_.poll();
        return h_.inside().drain();
    }
    // The UDP payload of an answer frame, after checking its headers against the request's.
    std::vector<uint8_t> answer_payload(const Frame& f) {
        const Topology& t = h_.topo();
        EXPECT_GE(f.size(), 42u);
        EXPECT_TRUE(std::equal(f.begin(), f.begin() + 6, t.subscriber1_mac.bytes.begin()));
        EXPECT_TRUE(std::equal(f.begin() + 6, f.begin() + 12, h_.inside().mac().bytes.begin()));
        EXPECT_EQ(common::load_be32(f.data() + 14 + 12), t.inside.address.value) << "from the server address";
        EXPECT_EQ(common::load_be32(f.data() + 14 + 16), t.subscriber1.value);
        EXPECT_EQ(common::load_be16(f.data() + 34), 5351);
        EXPECT_EQ(common::load_be16(f.data() + 36), 5350);
        // The checksums are right: a PacketBuilder frame with this payload is the same bytes.
        const std::vector<uint8_t> payload(f.begin() + 42, f.end());
        EXPECT_EQ(f, PacketBuilder()
                         .ethernet(h_.inside().mac(), t.subscriber1_mac)
                         .ipv4(t.inside.address, t.subscriber1, 64, 0)
                         .udp(5351, 5350)
                         .payload(payload)
                         .build());
        return payload;
    }

    DataplaneHarness h_;
    rte_ring* requests_;
    rte_ring* answers_;
    common::SteadyClock clock_;
    pcp::test::FakeNat nat_;
    pcp::Server server_;
    pcp::Service service_;
    std::unique_ptr<ctl::PcpDataplaneTransport> transport_;
};

TEST_F(PcpThroughTheDataplane, AMapRequestIsAnsweredAsAFrameOnTheInside) {
    const auto out = round_trip(pcp::test::encoded_request(
        pcp::test::map_request(h_.topo().subscriber1, 6, 8080, 3600)));
    ASSERT_EQ(out.size(), 1u);
    const auto r = pcp::decode_response(answer_payload(out[0]));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->result, pcp::ResultCode::success);
    EXPECT_EQ(r->map->external_address, pcp::IpAddress::from_ipv4(pcp::test::kPaired));
    EXPECT_EQ(r->map->internal_port, 8080);
    EXPECT_EQ(server_.mappings().size(), 1u);
    EXPECT_EQ(h_.counter(Counter::pcp_requests_punted), 1u);
    EXPECT_EQ(h_.counter(Counter::pcp_answers_sent), 1u);
    EXPECT_EQ(transport_->tally().answers, 1u);
    const auto b = h_.frame_balance();
    EXPECT_TRUE(b.balanced()) << b.describe();
}

TEST_F(PcpThroughTheDataplane, NatPmpTakesTheSameWay) {
    const auto out = round_trip(pcp::test::hex("00 00"));
    ASSERT_EQ(out.size(), 1u);
    const auto r = ctl::natpmp::decode_response(answer_payload(out[0]));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->result, ctl::natpmp::ResultCode::success);
    EXPECT_EQ(r->external_address, pcp::test::kPaired.value);
}

TEST_F(PcpThroughTheDataplane, ADroppedRequestGetsNoFrame) {
    // A PCP response sent to the server (R bit set) is dropped by the service (§8.3).
    auto bytes = pcp::test::encoded_request(pcp::test::map_request(h_.topo().subscriber1, 6, 1, 60));
    bytes[1] |= 0x80;
    // While another request waits for the NAT (its origin kept), the dropped one's is not.
    nat_.defer = true;
    EXPECT_TRUE(round_trip(pcp::test::encoded_request(
                               pcp::test::map_request(h_.topo().subscriber1, 6, 2, 60)))
                    .empty());
    EXPECT_TRUE(round_trip(bytes).empty());
    EXPECT_EQ(service_.tally().dropped, 1u);
    EXPECT_EQ(transport_->unanswered(), 1u) << "only the waiting request's origin is kept";
    const auto b = h_.frame_balance();
    EXPECT_TRUE(b.balanced()) << b.describe();
}

}  // namespace
}  // namespace cgn::test
