// The PCP client's rules (control/pcp/client.hpp) and a real UDP exchange on the loopback with
// the service on a UDP socket (control/pcp/udp_socket.hpp).
#include "control/pcp/client.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <atomic>
#include <cstdlib>
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
    ~LoopbackServer() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    uint16_t port() const { return transport_.port(); }
    const Server& server() const { return server_; }  // after stop()
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

// ---- the cgn-pcp tool ------------------------------------------------------------------------

struct ToolRun {
    int status = -1;
    std::string out;
};

ToolRun cgn_pcp(const std::string& args) {
    ToolRun r;
    FILE* p = popen((std::string(CGN_PCP_BINARY) + " " + args + " 2>&1").c_str(), "r");
    char buf[512];
    while (p != nullptr && fgets(buf, sizeof buf, p) != nullptr) r.out += buf;
    const int status = p != nullptr ? pclose(p) : -1;
    r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

TEST(CgnPcpTool, MapsAPortAndPrintsTheExternalEndpoint) {
    LoopbackServer server;
    const ToolRun r = cgn_pcp("--server 127.0.0.1 --port " + std::to_string(server.port()) +
                          " --protocol tcp --internal-port 8080 --lifetime 600"
                          " --description web --json map");
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("\"result\": \"SUCCESS\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"external\": [\"198.51.100.1\", 20000]"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("\"lifetime\": 600"), std::string::npos) << r.out;
    server.stop();
    ASSERT_EQ(server.server().mappings().size(), 1u);
    EXPECT_EQ(server.server().mappings().begin()->second.description, "web");
}

TEST(CgnPcpTool, ExitStatusSaysWhatHappened) {
    EXPECT_EQ(cgn_pcp("map").status, 2) << "no --server";
    EXPECT_EQ(cgn_pcp("--server 127.0.0.1 map").status, 2) << "no --internal-port";
    EXPECT_EQ(cgn_pcp("--server 127.0.0.1 --protocol sctp --internal-port 1 map").status, 2);
    const ToolRun silent = cgn_pcp("--server 127.0.0.1 --port 9 --timeout 0.3 --time-scale 0.01 announce");
    EXPECT_EQ(silent.status, 3) << silent.out;
    EXPECT_NE(silent.out.find("no answer from the PCP server"), std::string::npos) << silent.out;
    LoopbackServer server;
    const std::string at = "--server 127.0.0.1 --port " + std::to_string(server.port());
    const ToolRun announce = cgn_pcp(at + " announce");
    EXPECT_EQ(announce.status, 0) << announce.out;
    EXPECT_NE(announce.out.find("ANNOUNCE SUCCESS"), std::string::npos) << announce.out;
    const ToolRun refused = cgn_pcp(at + " --protocol udp --internal-port 0 map");
    EXPECT_EQ(refused.status, 1) << refused.out;
    EXPECT_NE(refused.out.find("NOT_AUTHORIZED"), std::string::npos) << refused.out;
}

// --keep: renewed before expiry (here the 120 s minimum lifetime, scaled down 1000 times),
// deleted when stopped.
TEST(CgnPcpTool, KeepRenewsAndDeletesWhenStopped) {
    LoopbackServer server;
    const std::string cmd = std::string(CGN_PCP_BINARY) + " --server 127.0.0.1 --port " +
                            std::to_string(server.port()) +
                            " --internal-port 9000 --lifetime 120 --time-scale 0.001 --keep --json map";
    FILE* p = popen(("exec " + cmd).c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[512];
    unsigned lines = 0;
    while (lines < 4 && fgets(buf, sizeof buf, p) != nullptr) {
        out += buf;
        ++lines;  // the first answer and three renewals (about 60-75 ms apart)
    }
    EXPECT_EQ(lines, 4u) << out;
    system(("pkill -TERM -f -- '--port " + std::to_string(server.port()) + " --internal-port 9000'").c_str());
    while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
    pclose(p);
    EXPECT_NE(out.find("\"lifetime\": 0"), std::string::npos) << "the deletion's answer:\n" << out;
    server.stop();
    EXPECT_TRUE(server.server().mappings().empty()) << out;
}

}  // namespace
}  // namespace cgn::ctl::pcp::test
