// The PCP client's rules (control/pcp/client.hpp) and a real UDP exchange on the loopback with
// the service on a UDP socket (control/pcp/udp_socket.hpp).
#include "control/pcp/client.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "control/pcp/udp_socket.hpp"
#include "tests/control/pcp/fake_nat.hpp"
#include "tests/control/pcp/pcp_test_util.hpp"

namespace cgn::ctl::pcp::test {
namespace {

TEST(PcpClient, RetransmissionDoublesFromThreeSecondsUpTo1024WithTenPercentJitter) {
    Retransmission middle([] { return 0.5; });  // RAND = 0
    std::vector<double> waits;
    for (int i = 0; i < 12; ++i) waits.push_back(middle.next_seconds());
    EXPECT_DOUBLE_EQ(waits[0], 3);
    EXPECT_DOUBLE_EQ(waits[1], 6);
    EXPECT_DOUBLE_EQ(waits[8], 768);
    EXPECT_DOUBLE_EQ(waits[9], 1024) << "MRT";
    EXPECT_DOUBLE_EQ(waits[11], 1024);
    Retransmission low([] { return 0.0; }), high([] { return 0.999999; });
    EXPECT_NEAR(low.next_seconds(), 2.7, 1e-9);
    EXPECT_NEAR(high.next_seconds(), 3.3, 1e-5);
}

TEST(PcpClient, EpochValidationFollowsSection8Point5) {
    EpochTracker t;
    EXPECT_TRUE(t.valid(1000, 50)) << "the first response";
    EXPECT_TRUE(t.valid(1060, 110)) << "both clocks moved 60 s";
    EXPECT_TRUE(t.valid(1061, 112)) << "within the 2 s slack";
    EXPECT_FALSE(t.valid(5, 120)) << "the server's time went back: it lost its state";
    EXPECT_TRUE(t.valid(65, 180));
    EXPECT_FALSE(t.valid(10065, 240)) << "the server's clock ran far ahead of the client's";
}

TEST(PcpClient, RenewalFallsBetweenHalfAndFiveEighthsOfTheLifetime) {
    EXPECT_DOUBLE_EQ(renewal_seconds(800, 0), 400);
    EXPECT_DOUBLE_EQ(renewal_seconds(800, 1), 500);
}

TEST(PcpClient, IPv6ServerAddressesComeFirst) {
    IpAddress six;
    six.bytes[0] = 0x20;
    six.bytes[1] = 0x01;
    six.bytes[2] = 0x0d;
    six.bytes[3] = 0xb8;
    six.bytes[15] = 1;
    const auto ordered = order_server_addresses({v4("100.64.0.1"), six, v4("100.64.0.2")});
    EXPECT_EQ(ordered[0], six);
    EXPECT_EQ(ordered[1], v4("100.64.0.1"));
    EXPECT_EQ(ordered[2], v4("100.64.0.2"));
}

// The service on 127.0.0.1 (the loopback's 127/8 counted as subscribers here), in a thread.
class LoopbackServer {
public:
    explicit LoopbackServer(unsigned drop_first = 0)
        : transport_(ip("127.0.0.1"), 0), server_(settings(), nat_, clock_),
          service_(server_, nullptr, clock_), drop_first_(drop_first),
          thread_([this] { run(); }) {}
    ~LoopbackServer() {
        stop_ = true;
        thread_.join();
    }
    uint16_t port() const { return transport_.port(); }
    unsigned received() const { return received_; }

private:
    static ServerSettings settings() {
        ServerSettings s;
        s.subscribers = {*common::Ipv4Prefix::parse("127.0.0.0/8")};
        return s;
    }
    void run() {
        while (!stop_) {
            auto datagrams = transport_.receive(16, 10);
            for (auto& d : datagrams) {
                if (received_++ < drop_first_) continue;  // lost on the way
                const Received r{d.source, d.port, d.bytes};
                for (const Answer& a : service_.serve(std::span(&r, 1))) transport_.send(a);
            }
        }
    }

    common::SteadyClock clock_;
    FakeNat nat_;
    UdpSocketTransport transport_;
    Server server_;
    Service service_;
    unsigned drop_first_;
    std::atomic<unsigned> received_{0};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

Request map_8080() {
    Request r;
    r.opcode = Opcode::map;
    r.lifetime = 600;
    MapData m;
    m.nonce = nonce_1_to_12();
    m.protocol = 6;
    m.internal_port = 8080;
    m.external_address = IpAddress::ipv4_any();
    r.map = m;
    return r;  // the client address is filled in by exchange()
}

TEST(PcpClient, MapOverUdpOnTheLoopback) {
    LoopbackServer server;
    Exchange how;
    how.servers = {v4("127.0.0.1")};
    how.server_port = server.port();
    how.give_up = std::chrono::seconds(5);
    const auto result = exchange(map_8080(), how, [] { return 0.5; });
    ASSERT_TRUE(result.response) << result.error;
    EXPECT_EQ(result.response->result, ResultCode::success);
    EXPECT_EQ(result.response->map->external_address, IpAddress::from_ipv4(kPaired));
    EXPECT_EQ(result.sent, 1u);
    EXPECT_EQ(result.answered_by, v4("127.0.0.1"));
}

TEST(PcpClient, ALostRequestIsSentAgain) {
    LoopbackServer server(1);
    Exchange how;
    how.servers = {v4("127.0.0.1")};
    how.server_port = server.port();
    how.scale = 0.02;  // 60 ms instead of 3 s
    const auto result = exchange(map_8080(), how, [] { return 0.5; });
    ASSERT_TRUE(result.response) << result.error;
    EXPECT_EQ(result.sent, 2u);
    EXPECT_EQ(server.received(), 2u);
}

// RFC 7488 §3: a server address that does not answer is left for the next one.
TEST(PcpClient, TheNextServerAddressIsTriedWhenOneDoesNotAnswer) {
    LoopbackServer server;  // on 127.0.0.1 only: 127.0.0.2 has no server
    Exchange how;
    how.servers = {v4("127.0.0.2"), v4("127.0.0.1")};
    how.server_port = server.port();
    how.scale = 0.02;
    const auto result = exchange(map_8080(), how, [] { return 0.5; });
    ASSERT_TRUE(result.response) << result.error;
    EXPECT_EQ(result.answered_by, v4("127.0.0.1"));
    EXPECT_EQ(result.sent, 2u);
}

TEST(PcpClient, NoServerMeansAClearErrorAfterTheDeadline) {
    Exchange how;
    how.servers = {v4("127.0.0.1")};
    how.server_port = 9;  // discard: nothing answers
    how.scale = 0.01;
    how.give_up = std::chrono::milliseconds(300);
    const auto result = exchange(map_8080(), how, [] { return 0.5; });
    EXPECT_FALSE(result.response);
    EXPECT_GE(result.sent, 3u);
    EXPECT_NE(result.error.find("no answer from the PCP server after"), std::string::npos)
        << result.error;
}

}  // namespace
}  // namespace cgn::ctl::pcp::test
