// The PCP client's rules (control/pcp/client.hpp, control/pcp/server_selection.hpp) and a real
// UDP exchange on the loopback with the service on a UDP socket (control/pcp/udp_socket.hpp);
// the cgn-pcp tool against one or two such services.
#include "control/pcp/client.hpp"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "control/pcp/server_selection.hpp"
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

// ---- RFC 7488 server selection (control/pcp/server_selection.hpp) ----------------------------

// A granted MAP answer of `epoch` on `external`:`port`.
Response granted(const char* external, uint16_t port, uint32_t epoch = 1000) {
    Response r;
    r.opcode = Opcode::map;
    r.lifetime = 600;
    r.epoch = epoch;
    MapData m;
    m.protocol = 6;
    m.internal_port = 8080;
    m.external_address = v4(external);
    m.external_port = port;
    r.map = m;
    return r;
}

// §3: the address that answered is used first from then on, the others kept behind it.
TEST(PcpServerSelection, TheAddressThatAnsweredIsTriedFirstFromThenOn) {
    KnownServer server({v4("192.0.2.1"), v4("192.0.2.2"), v4("192.0.2.3")});
    EXPECT_EQ(server.addresses_to_try(),
              (std::vector<IpAddress>{v4("192.0.2.1"), v4("192.0.2.2"), v4("192.0.2.3")}));
    server.answered(v4("192.0.2.3"), granted("198.51.100.1", 20000), 10);
    EXPECT_EQ(server.addresses_to_try(),
              (std::vector<IpAddress>{v4("192.0.2.3"), v4("192.0.2.1"), v4("192.0.2.2")}));
    server.answered(v4("203.0.113.9"), granted("198.51.100.1", 20000), 11);  // not its address
    EXPECT_EQ(server.addresses_to_try().front(), v4("192.0.2.3"));
}

// §4: with no external address wanted, each server gives its own mapping.
TEST(PcpServerSelection, NoExternalAddressWantedAsksEveryServer) {
    const KnownServers servers{KnownServer({v4("192.0.2.1")}), KnownServer({v4("192.0.2.129")}),
                               KnownServer({v4("192.0.2.200")})};
    for (const IpAddress& none : {IpAddress::ipv4_any(), IpAddress{}}) {
        const MappingPlan plan = plan_mapping(servers, none, false);
        EXPECT_EQ(plan.kind, MappingPlan::Kind::every_server);
        EXPECT_EQ(plan.servers, (std::vector<size_t>{0, 1, 2}));
    }
}

// §4: the server declared with the external address wanted is asked, and it alone.
TEST(PcpServerSelection, TheDeclaredOwnerOfTheAddressIsAskedAlone) {
    const KnownServers servers{
        KnownServer({v4("192.0.2.1")}, {*common::Ipv4Prefix::parse("198.51.100.0/24")}),
        KnownServer({v4("192.0.2.129"), v4("192.0.2.130")},
                    {*common::Ipv4Prefix::parse("203.0.113.0/25"),
                     *common::Ipv4Prefix::parse("203.0.113.128/25")})};
    MappingPlan plan = plan_mapping(servers, v4("203.0.113.200"), false);
    EXPECT_EQ(plan.kind, MappingPlan::Kind::owner);
    EXPECT_EQ(plan.servers, std::vector<size_t>{1});
    plan = plan_mapping(servers, v4("198.51.100.7"), true);
    EXPECT_EQ(plan.kind, MappingPlan::Kind::owner) << "a deletion too goes to the owner alone";
    EXPECT_EQ(plan.servers, std::vector<size_t>{0});
    plan = plan_mapping(servers, v4("192.0.2.77"), false);
    EXPECT_EQ(plan.kind, MappingPlan::Kind::nobody) << "declared: neither controls it";
    EXPECT_TRUE(plan.servers.empty());
}

// §4 when nobody has said: one server after another; a server whose answers gave another
// address goes after those not seen yet, and one whose answer gave the address is its owner.
TEST(PcpServerSelection, TheOwnerIsLearnedFromTheAnswers) {
    KnownServers servers{
        KnownServer({v4("192.0.2.1")}), KnownServer({v4("192.0.2.129")}),
        KnownServer({v4("192.0.2.200")}, {*common::Ipv4Prefix::parse("192.0.2.0/24")})};
    const IpAddress wanted = v4("203.0.113.1");
    MappingPlan plan = plan_mapping(servers, wanted, false);
    EXPECT_EQ(plan.kind, MappingPlan::Kind::in_turn);
    EXPECT_EQ(plan.servers, (std::vector<size_t>{0, 1})) << "the third is declared another's";

    servers[0].answered(v4("192.0.2.1"), granted("198.51.100.1", 20000), 10);
    EXPECT_EQ(servers[0].controls(wanted), KnownServer::Control::elsewhere);
    plan = plan_mapping(servers, wanted, false);
    EXPECT_EQ(plan.kind, MappingPlan::Kind::in_turn);
    EXPECT_EQ(plan.servers, (std::vector<size_t>{1, 0}));

    servers[1].answered(v4("192.0.2.129"), granted("203.0.113.1", 7000), 10);
    plan = plan_mapping(servers, wanted, false);
    EXPECT_EQ(plan.kind, MappingPlan::Kind::owner);
    EXPECT_EQ(plan.servers, std::vector<size_t>{1});
    EXPECT_EQ(plan_mapping(servers, v4("198.51.100.1"), false).servers, std::vector<size_t>{0});
}

// An error answer copies the request (RFC 6887 §7.3), suggestion included: it proves nothing.
TEST(PcpServerSelection, ErrorsAndDeletionsTeachNoAddress) {
    KnownServer server({v4("192.0.2.1")});
    Response refused = granted("203.0.113.1", 7000);
    refused.result = ResultCode::cannot_provide_external;
    refused.lifetime = 30;
    server.answered(v4("192.0.2.1"), refused, 10);
    Response deleted = granted("203.0.113.1", 7000);
    deleted.lifetime = 0;
    server.answered(v4("192.0.2.1"), deleted, 11);
    EXPECT_EQ(server.controls(v4("203.0.113.1")), KnownServer::Control::unknown);
    EXPECT_FALSE(grants_address(refused, v4("203.0.113.1")));
    EXPECT_FALSE(grants_address(deleted, v4("203.0.113.1")));
    EXPECT_FALSE(grants_address(granted("198.51.100.1", 7000), v4("203.0.113.1")));
    EXPECT_TRUE(grants_address(granted("203.0.113.1", 7000), v4("203.0.113.1")));
}

// A deletion is not sent in turn: every server that may hold the mapping is asked.
TEST(PcpServerSelection, ADeletionGoesToEveryServerThatMayHoldIt) {
    const KnownServers servers{
        KnownServer({v4("192.0.2.1")}), KnownServer({v4("192.0.2.129")}),
        KnownServer({v4("192.0.2.200")}, {*common::Ipv4Prefix::parse("198.51.100.0/24")})};
    const MappingPlan plan = plan_mapping(servers, v4("203.0.113.1"), true);
    EXPECT_EQ(plan.kind, MappingPlan::Kind::every_server);
    EXPECT_EQ(plan.servers, (std::vector<size_t>{0, 1}));
}

// One server: RFC 6887 alone, the suggested address a hint (§11.3).
TEST(PcpServerSelection, OneServerIsAskedWhateverTheAddressWanted) {
    const KnownServers one{
        KnownServer({v4("192.0.2.1")}, {*common::Ipv4Prefix::parse("198.51.100.0/24")})};
    const MappingPlan plan = plan_mapping(one, v4("203.0.113.1"), false);
    EXPECT_EQ(plan.kind, MappingPlan::Kind::owner);
    EXPECT_EQ(plan.servers, std::vector<size_t>{0});
}

// RFC 6887 §8.5 per server: one server's reset says nothing of another's.
TEST(PcpServerSelection, EachServerHasItsOwnEpoch) {
    KnownServer a({v4("192.0.2.1")}), b({v4("192.0.2.129")});
    EXPECT_TRUE(a.answered(v4("192.0.2.1"), granted("198.51.100.1", 1, 1000), 50));
    EXPECT_TRUE(b.answered(v4("192.0.2.129"), granted("203.0.113.1", 1, 7000), 50));
    EXPECT_TRUE(a.answered(v4("192.0.2.1"), granted("198.51.100.1", 1, 1060), 110));
    EXPECT_FALSE(b.answered(v4("192.0.2.129"), granted("203.0.113.1", 1, 3), 110))
        << "b restarted without its state";
    EXPECT_TRUE(a.answered(v4("192.0.2.1"), granted("198.51.100.1", 1, 1120), 170))
        << "a's epoch is a's alone";
    EXPECT_TRUE(b.answered(v4("192.0.2.129"), granted("203.0.113.1", 1, 63), 170));
}

// ---- the service on the loopback -------------------------------------------------------------

// The NAT behind one loopback service: one external address for every subscriber, ports from
// 20000 up, a suggestion honoured when it is on this address and free, and given exactly or
// not at all when asked so (RFC 6887 §11.3, §13.2). Two of them are two ISPs' NATs.
class OneAddressNat final : public NatControl {
public:
    explicit OneAddressNat(common::Ipv4Address external) : external_(external) {}
    unsigned maps_asked = 0;  // MAP requests that reached the NAT (creations, not refreshes)

    bool static_mapping(const MappingKey&) override { return false; }
    void submit(const NatRequest& q) override { ready_.push_back({q.id, grant(q)}); }
    void release(const MappingKey& key, const Endpoint& e) override {
        taken_.erase(e.port);
        held_.erase(key);
    }
    std::vector<NatAnswer> take_answers() override { return std::exchange(ready_, {}); }

private:
    Grant grant(const NatRequest& q) {
        if (q.kind == NatRequest::Kind::external_address)
            return {ResultCode::success, Endpoint{external_, 0}};
        if (q.kind == NatRequest::Kind::peer)
            return {ResultCode::success, Endpoint{external_, 31000}};
        ++maps_asked;
        if (auto it = held_.find(q.key); it != held_.end())
            return {ResultCode::success, it->second};
        Endpoint e{external_, 0};
        const bool ours =
            q.suggested && (q.suggested->address.value == 0 || q.suggested->address == external_);
        if (ours && taken_.count(q.suggested->port) == 0) {
            e.port = q.suggested->port;
        } else if (q.exact) {
            return {ResultCode::cannot_provide_external, {}};
        } else {
            e.port = 20000;
            while (taken_.count(e.port)) ++e.port;
        }
        taken_.insert(e.port);
        held_[q.key] = e;
        return {ResultCode::success, e};
    }

    common::Ipv4Address external_;
    std::set<uint16_t> taken_;
    std::map<MappingKey, Endpoint> held_;
    std::vector<NatAnswer> ready_;
};

struct LoopbackSettings {
    const char* address = "127.0.0.1";
    uint16_t port = 0;                      // 0: any free one
    const char* external = "198.51.100.1";  // its NAT's external address (kPaired)
    uint32_t epoch = 0;                     // the epoch it starts at (as if restored, §8.5)
    unsigned drop_first = 0;                // requests lost on the way
    uint32_t min_lifetime = 120;            // the shortest lifetime granted (§15)
};

// The service on a loopback address (the loopback's 127/8 counted as subscribers here), in a
// thread.
class LoopbackServer {
public:
    explicit LoopbackServer(LoopbackSettings s = {})
        : nat_(ip(s.external)),
          transport_(ip(s.address), s.port),
          server_(settings(s.min_lifetime), nat_, clock_),
          service_(server_, nullptr, clock_),
          drop_first_(s.drop_first) {
        if (s.epoch != 0) server_.restore(s.epoch, {}, 0);
        thread_ = std::thread([this] { run(); });
    }
    ~LoopbackServer() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    uint16_t port() const { return transport_.port(); }
    const Server& server() const { return server_; }   // after stop()
    const OneAddressNat& nat() const { return nat_; }  // after stop()
    const Service& service() const { return service_; }  // after stop()
    unsigned received() const { return received_; }
    // While on, every request is lost on the way (the server unreachable for a while).
    void unreachable(bool on) { unreachable_ = on; }

private:
    static ServerSettings settings(uint32_t min_lifetime) {
        ServerSettings s;
        s.min_lifetime = min_lifetime;
        s.subscribers = {*common::Ipv4Prefix::parse("127.0.0.0/8")};
        // Every test client is 127.0.0.1: --keep tests renew every few milliseconds.
        s.requests_per_second = 10000;
        s.request_burst = 10000;
        return s;
    }
    void run() {
        while (!stop_) {
            auto datagrams = transport_.receive(16, 10);
            service_.expire();  // lifetimes end as in cgnd
            for (auto& d : datagrams) {
                if (received_++ < drop_first_ || unreachable_) continue;  // lost on the way
                const Received r{d.source, d.port, d.bytes};
                for (const Answer& a : service_.serve(std::span(&r, 1))) transport_.send(a);
            }
        }
    }

    common::SteadyClock clock_;
    OneAddressNat nat_;
    UdpSocketTransport transport_;
    Server server_;
    Service service_;
    unsigned drop_first_;
    std::atomic<bool> unreachable_{false};
    std::atomic<unsigned> received_{0};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// Two services on one port, each its own NAT: 127.0.0.1 (external 198.51.100.1) and 127.0.0.2
// (external 203.0.113.1), a subscriber's two ISPs. The port is the first's free one; should
// 127.0.0.2 have it taken, another.
struct TwoServers {
    std::unique_ptr<LoopbackServer> first, second;
    uint16_t port = 0;
    // The second one restarted without its state (its epoch from 0, RFC 6887 §8.5).
    void restart_second() {
        second.reset();
        second = std::make_unique<LoopbackServer>(
            LoopbackSettings{.address = "127.0.0.2", .port = port, .external = "203.0.113.1"});
    }
};

TwoServers two_servers(uint32_t epoch = 0) {
    for (int attempt = 0;; ++attempt) {
        TwoServers two;
        two.first = std::make_unique<LoopbackServer>(LoopbackSettings{.epoch = epoch});
        two.port = two.first->port();
        try {
            two.second =
                std::make_unique<LoopbackServer>(LoopbackSettings{.address = "127.0.0.2",
                                                                  .port = two.port,
                                                                  .external = "203.0.113.1",
                                                                  .epoch = epoch});
            return two;
        } catch (const std::runtime_error&) {
            if (attempt == 20) throw;
        }
    }
}

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
    LoopbackServer server({.drop_first = 1});
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
    EXPECT_NE(r.out.find("\"sent\": 1"), std::string::npos) << "answered at once: " << r.out;
    server.stop();
    ASSERT_EQ(server.server().mappings().size(), 1u);
    EXPECT_EQ(server.server().mappings().begin()->second.description, "web");
}

// --filter PREFIX[:PORT] is §13.3's FILTER; PREFIX/0 is its prefix length 0, which removes
// the mapping's filters. Without the /0 case the second request is MALFORMED_OPTION (an
// IPv4-mapped prefix of 96 bits is not a filter).
TEST(CgnPcpTool, FiltersAreSentAndSlashZeroRemovesThem) {
    LoopbackServer server;
    const std::string at = "--server 127.0.0.1 --port " + std::to_string(server.port()) +
                           " --protocol udp --internal-port 5000 --lifetime 600 --nonce "
                           "0102030405060708090a0b0c --json";
    const ToolRun first = cgn_pcp(at + " --filter 203.0.113.0/24:53 --filter 192.0.2.7/32 map");
    EXPECT_EQ(first.status, 0) << first.out;
    const ToolRun cleared = cgn_pcp(at + " --filter 0.0.0.0/0 map");
    EXPECT_EQ(cleared.status, 0) << cleared.out;
    server.stop();
    ASSERT_EQ(server.server().mappings().size(), 1u);
    EXPECT_TRUE(server.server().mappings().begin()->second.filters.empty());
}

// --port-set N asks for RFC 7753's set of N ports; the size granted is printed (this
// loopback server's stand-in NAT grants one port at a time: a set of 1, which the answer's
// PORT_SET says). Without the option the answer has no PORT_SET and the JSON no "port_set".
TEST(CgnPcpTool, PortSetAsksForConsecutivePorts) {
    LoopbackServer server;
    const ToolRun r = cgn_pcp("--server 127.0.0.1 --port " + std::to_string(server.port()) +
                              " --protocol udp --internal-port 7000 --port-set 3 --json map");
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_NE(r.out.find("\"port_set\": 1}"), std::string::npos) << r.out;
    server.stop();
    ASSERT_EQ(server.server().mappings().size(), 1u);
    EXPECT_EQ(server.server().mappings().begin()->second.port_set.size, 1u);
    const std::string at = "--server 127.0.0.1 --internal-port 7000 ";
    EXPECT_EQ(cgn_pcp(at + "--port-set 0 map").status, 2);
    EXPECT_EQ(cgn_pcp(at + "--parity map").status, 2) << "parity of what set";
    EXPECT_EQ(cgn_pcp("--server 127.0.0.1 --internal-port 65535 --port-set 2 map").status, 2);
    EXPECT_EQ(cgn_pcp(at + "--port-set 2 --remote 192.0.2.1:53 peer").status, 2);
}

// Bad input is a usage error naming it (exit 2), never an uncaught exception.
TEST(CgnPcpTool, BadNoncesAndFilterPortsAreUsageErrors) {
    const std::string at = "--server 127.0.0.1 --internal-port 1 ";
    const ToolRun nonce = cgn_pcp(at + "--nonce zz0102030405060708090a0b map");
    EXPECT_EQ(nonce.status, 2) << nonce.out;
    EXPECT_NE(nonce.out.find("--nonce zz0102030405060708090a0b"), std::string::npos) << nonce.out;
    const ToolRun port = cgn_pcp(at + "--filter 192.0.2.0/24:http map");
    EXPECT_EQ(port.status, 2) << port.out;
    EXPECT_NE(port.out.find("--filter 192.0.2.0/24:http"), std::string::npos) << port.out;
    EXPECT_EQ(cgn_pcp(at + "--filter 192.0.2.0/24:70000 map").status, 2);
}

TEST(CgnPcpTool, ExitStatusSaysWhatHappened) {
    EXPECT_EQ(cgn_pcp("map").status, 2) << "no --server";
    EXPECT_EQ(cgn_pcp("--server 127.0.0.1 map").status, 2) << "no --internal-port";
    EXPECT_EQ(cgn_pcp("--server 127.0.0.1 --protocol sctp --internal-port 1 map").status, 2);
    const ToolRun silent =
        cgn_pcp("--server 127.0.0.1 --port 9 --timeout 0.3 --time-scale 0.01 announce");
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

// cgn-pcp running in the background (--keep): its output (stdout and stderr) read line by
// line, stopped by its own process id.
class RunningTool {
public:
    explicit RunningTool(const std::string& args) {
        int fds[2];
        if (pipe(fds) != 0) return;
        pid_ = fork();
        if (pid_ == 0) {
            dup2(fds[1], 1);
            dup2(fds[1], 2);
            close(fds[0]);
            close(fds[1]);
            const std::string command = "exec " + std::string(CGN_PCP_BINARY) + " " + args;
            execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
            _exit(127);
        }
        close(fds[1]);
        fd_ = fds[0];
    }
    ~RunningTool() {
        if (pid_ > 0 && !exited_) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
        if (fd_ >= 0) close(fd_);
    }
    RunningTool(const RunningTool&) = delete;
    RunningTool& operator=(const RunningTool&) = delete;

    // The next line, or nothing when none comes within `within` (or the tool ended).
    std::optional<std::string> line(std::chrono::milliseconds within = std::chrono::seconds(3)) {
        const auto until = std::chrono::steady_clock::now() + within;
        while (true) {
            if (const auto eol = pending_.find('\n'); eol != std::string::npos) {
                std::string l = pending_.substr(0, eol + 1);
                pending_.erase(0, eol + 1);
                out_ += l;
                return l;
            }
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                until - std::chrono::steady_clock::now());
            pollfd p{fd_, POLLIN, 0};
            if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0)
                return std::nullopt;
            char buf[512];
            const ssize_t n = read(fd_, buf, sizeof buf);
            if (n <= 0) return std::nullopt;
            pending_.append(buf, static_cast<size_t>(n));
        }
    }
    // SIGTERM, the rest of the output read; the exit status.
    int stop() {
        kill(pid_, SIGTERM);
        while (line()) {
        }
        int status = 0;
        waitpid(pid_, &status, 0);
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    const std::string& out() const { return out_; }

private:
    pid_t pid_ = -1;
    int fd_ = -1;
    bool exited_ = false;
    std::string pending_, out_;
};

bool has(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

// --keep: renewed before expiry (here the 120 s minimum lifetime, scaled down 1000 times),
// deleted when stopped.
TEST(CgnPcpTool, KeepRenewsAndDeletesWhenStopped) {
    LoopbackServer server;
    RunningTool tool("--server 127.0.0.1 --port " + std::to_string(server.port()) +
                     " --internal-port 9000 --lifetime 120 --time-scale 0.001 --keep --json map");
    unsigned lines = 0;
    while (lines < 4 && tool.line())
        ++lines;  // the first answer and three renewals (60-75 ms apart)
    EXPECT_EQ(lines, 4u) << tool.out();
    EXPECT_EQ(tool.stop(), 0) << tool.out();
    EXPECT_TRUE(has(tool.out(), "\"lifetime\": 0")) << "the deletion's answer:\n" << tool.out();
    server.stop();
    EXPECT_TRUE(server.server().mappings().empty()) << tool.out();
}

// --keep: a renewal left unanswered is tried again before the mapping lapses, not a whole
// renewal interval later. Lifetime 3 s (the server's minimum lowered for the test), renewal
// at 1.5-1.9 s, --timeout 0.3 s: the renewal fails at 1.8-2.2 s with the server unreachable;
// the server is back at once, and the retry (halfway to the expiry, at the latest 1 s on)
// arrives before 3 s. Without the retry, the next try came 1.5 s after the failure, when the
// server had expired the mapping and made it anew.
TEST(CgnPcpTool, KeepTriesAnUnansweredRenewalAgainBeforeTheMappingLapses) {
    LoopbackServer server(LoopbackSettings{.min_lifetime = 1});
    RunningTool tool("--server 127.0.0.1 --port " + std::to_string(server.port()) +
                     " --internal-port 9200 --lifetime 3 --timeout 0.3 --keep --json map");
    const auto first = tool.line();
    ASSERT_TRUE(first && has(*first, "\"lifetime\": 3")) << tool.out();
    server.unreachable(true);
    std::optional<std::string> l;
    while ((l = tool.line()) && !has(*l, "renewal at server")) {
    }
    ASSERT_TRUE(l) << "the renewal went unanswered:\n" << tool.out();
    server.unreachable(false);
    l = tool.line();
    ASSERT_TRUE(l && has(*l, "\"lifetime\": 3")) << "renewed on the retry:\n" << tool.out();
    EXPECT_EQ(tool.stop(), 0) << tool.out();
    server.stop();
    EXPECT_EQ(server.service().tally().expired, 0u) << "the mapping lapsed\n" << tool.out();
    EXPECT_EQ(server.nat().maps_asked, 1u) << "made once, then refreshed only\n" << tool.out();
}

TEST(PcpClient, AnUnansweredRenewalIsTriedAgainBeforeTheExpiry) {
    EXPECT_DOUBLE_EQ(renewal_retry_seconds(60, 1.0), 1.0) << "after the pause";
    EXPECT_DOUBLE_EQ(renewal_retry_seconds(1.2, 1.0), 0.6) << "halfway to the expiry";
    EXPECT_DOUBLE_EQ(renewal_retry_seconds(-5, 1.0), 0.0) << "expired: at once";
}

// ---- the cgn-pcp tool with two PCP servers (RFC 7488 §4) --------------------------------------

std::string at_port(uint16_t port) { return " --port " + std::to_string(port) + " "; }

// --help tells how to name several servers.
TEST(CgnPcpTool, HelpExplainsSeveralServers) {
    const ToolRun help = cgn_pcp("--help");
    EXPECT_EQ(help.status, 0);
    EXPECT_TRUE(has(help.out, "--server-set")) << help.out;
    EXPECT_TRUE(has(help.out, "RFC 7488 §4")) << help.out;
    EXPECT_EQ(cgn_pcp("--server-set 127.0.0.1=bogus --internal-port 1 map").status, 2);
    EXPECT_EQ(cgn_pcp("--server-set =198.51.100.0/24 --internal-port 1 map").status, 2);
    // Both servers declared with other addresses: nobody to ask, and nothing sent.
    const ToolRun nobody = cgn_pcp(
        "--server-set 127.0.0.1=198.51.100.0/24 --server-set 127.0.0.2=203.0.113.0/24"
        " --port 9 --internal-port 8080 --external 192.0.2.9:8080 map");
    EXPECT_EQ(nobody.status, 2) << nobody.out;
    EXPECT_TRUE(has(nobody.out, "192.0.2.9")) << nobody.out;
}

// The mapping wanted on 203.0.113.1 goes to the server declared with it, and the other server
// sees nothing at all; the same the other way round.
TEST(CgnPcpTool, OnlyTheDeclaredServerOfTheExternalAddressIsAsked) {
    TwoServers two = two_servers();
    const std::string servers =
        "--server-set 127.0.0.1=198.51.100.0/24 --server-set 127.0.0.2=203.0.113.0/24" +
        at_port(two.port);
    const ToolRun second =
        cgn_pcp(servers + "--internal-port 8080 --external 203.0.113.1:7000 --json map");
    EXPECT_EQ(second.status, 0) << second.out;
    EXPECT_TRUE(has(second.out, "\"server\": \"127.0.0.2\"")) << second.out;
    EXPECT_TRUE(has(second.out, "\"external\": [\"203.0.113.1\", 7000]")) << second.out;
    EXPECT_EQ(two.first->received(), 0u) << "the other server saw no MAP";
    const ToolRun first =
        cgn_pcp(servers + "--internal-port 8081 --external 198.51.100.1:7001 --json map");
    EXPECT_EQ(first.status, 0) << first.out;
    EXPECT_TRUE(has(first.out, "\"external\": [\"198.51.100.1\", 7001]")) << first.out;
    EXPECT_EQ(two.second->received(), 1u) << "only the first mapping's MAP";
    two.first->stop();
    two.second->stop();
    ASSERT_EQ(two.first->server().mappings().size(), 1u);
    EXPECT_EQ(two.first->server().mappings().begin()->first.internal_port, 8081);
    ASSERT_EQ(two.second->server().mappings().size(), 1u);
    EXPECT_EQ(two.second->server().mappings().begin()->first.internal_port, 8080);
}

// Nobody declared: the servers are asked one after another until one gives the address. A
// server asked first that gives another address has that mapping deleted at once; one asked
// after the owner answered sees nothing.
TEST(CgnPcpTool, UndeclaredServersAreAskedInTurnUntilOneGivesTheAddress) {
    TwoServers two = two_servers();
    const ToolRun owner_second =
        cgn_pcp("--server-set 127.0.0.1 --server-set 127.0.0.2" + at_port(two.port) +
                "--internal-port 8080 --external 203.0.113.1:7000 --json map");
    EXPECT_EQ(owner_second.status, 0) << owner_second.out;
    EXPECT_TRUE(has(owner_second.out, "\"external\": [\"203.0.113.1\", 7000]")) << owner_second.out;
    EXPECT_TRUE(has(owner_second.out, "server 127.0.0.1 gives 198.51.100.1, not 203.0.113.1"))
        << owner_second.out;
    EXPECT_EQ(two.first->received(), 2u) << "its MAP and the deletion";

    const ToolRun owner_first =
        cgn_pcp("--server-set 127.0.0.2 --server-set 127.0.0.1" + at_port(two.port) +
                "--internal-port 8081 --external 203.0.113.1:7001 --json map");
    EXPECT_EQ(owner_first.status, 0) << owner_first.out;
    EXPECT_EQ(two.first->received(), 2u) << "asked after the owner answered: nothing";

    const ToolRun nobody =
        cgn_pcp("--server-set 127.0.0.1 --server-set 127.0.0.2" + at_port(two.port) +
                "--internal-port 8082 --external 192.0.2.9:7002 --json map");
    EXPECT_EQ(nobody.status, 1) << nobody.out;
    EXPECT_TRUE(has(nobody.out, "no PCP server gave the external address 192.0.2.9")) << nobody.out;

    two.first->stop();
    two.second->stop();
    EXPECT_TRUE(two.first->server().mappings().empty()) << "every mapping it made was deleted";
    std::set<uint16_t> on_second;
    for (const auto& [key, mapping] : two.second->server().mappings()) {
        on_second.insert(key.internal_port);
        EXPECT_EQ(mapping.external.address, ip("203.0.113.1"));
    }
    EXPECT_EQ(on_second, (std::set<uint16_t>{8080, 8081})) << "8082 deleted there too";
}

// No external address wanted: each server gives its own mapping (its own nonce), one line
// each.
TEST(CgnPcpTool, SeveralServersEachGiveTheirOwnMapping) {
    TwoServers two = two_servers();
    const ToolRun r = cgn_pcp("--server 127.0.0.1 --server-set 127.0.0.2" + at_port(two.port) +
                              "--internal-port 8080 --json map");
    EXPECT_EQ(r.status, 0) << r.out;
    EXPECT_TRUE(has(r.out, "\"server\": \"127.0.0.1\"")) << r.out;
    EXPECT_TRUE(has(r.out, "\"external\": [\"198.51.100.1\", 20000]")) << r.out;
    EXPECT_TRUE(has(r.out, "\"server\": \"127.0.0.2\"")) << r.out;
    EXPECT_TRUE(has(r.out, "\"external\": [\"203.0.113.1\", 20000]")) << r.out;
    two.first->stop();
    two.second->stop();
    ASSERT_EQ(two.first->server().mappings().size(), 1u);
    ASSERT_EQ(two.second->server().mappings().size(), 1u);
    EXPECT_NE(two.first->server().mappings().begin()->second.nonce,
              two.second->server().mappings().begin()->second.nonce);
}

// --keep with two servers: each renewed on its own; the second restarts without its state
// (epoch back to 0 from 1000): its mapping is made again by its next renewal, and the first's
// is neither made again nor moved.
TEST(CgnPcpTool, KeepRemakesOnlyTheMappingOfTheServerThatLostItsState) {
    TwoServers two = two_servers(1000);
    RunningTool tool("--server-set 127.0.0.1 --server-set 127.0.0.2" + at_port(two.port) +
                     "--internal-port 9100 --lifetime 120 --time-scale 0.001 --timeout 2 --keep"
                     " --json map");
    const std::string from_first = "\"server\": \"127.0.0.1\"",
                      from_second = "\"server\": \"127.0.0.2\"";
    // Renewals come every 60-75 ms: what is awaited comes well within this, or never.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    unsigned first_lines = 0, second_lines = 0;
    while ((first_lines < 2 || second_lines < 2)) {  // the first answers and a renewal of each
        const auto l = tool.line();
        ASSERT_TRUE(l && std::chrono::steady_clock::now() < give_up) << tool.out();
        first_lines += has(*l, from_first);
        second_lines += has(*l, from_second);
    }
    two.second->stop();
    const unsigned made_before_restart = two.second->nat().maps_asked;
    two.restart_second();
    bool remade = false, first_renewed_after = false;
    while (!remade || !first_renewed_after) {
        const auto l = tool.line();
        ASSERT_TRUE(l && std::chrono::steady_clock::now() < give_up)
            << "the second server's mapping made again, then a renewal of the first's:\n"
            << tool.out();
        if (has(*l, from_second) && has(*l, "\"state_lost\": true")) remade = true;
        if (remade && has(*l, from_first)) first_renewed_after = true;
    }
    EXPECT_EQ(tool.stop(), 0) << tool.out();

    std::string first_external;
    std::istringstream lines(tool.out());
    for (std::string l; std::getline(lines, l);) {
        if (!has(l, from_first)) continue;
        EXPECT_TRUE(has(l, "\"state_lost\": false")) << l;
        if (has(l, "\"lifetime\": 0")) continue;  // the deletion
        const auto at = l.find("\"external\"");
        ASSERT_NE(at, std::string::npos) << l;
        const std::string external = l.substr(at, l.find(']', at) - at);
        if (first_external.empty()) first_external = external;
        EXPECT_EQ(external, first_external) << "the first server's mapping did not move";
    }
    two.first->stop();
    two.second->stop();
    EXPECT_EQ(made_before_restart, 1u);
    EXPECT_EQ(two.first->nat().maps_asked, 1u) << "made once, then refreshed only\n" << tool.out();
    EXPECT_EQ(two.second->nat().maps_asked, 1u) << "made again once\n" << tool.out();
    EXPECT_TRUE(two.first->server().mappings().empty()) << "deleted when stopped";
    EXPECT_TRUE(two.second->server().mappings().empty()) << "deleted when stopped";
}

}  // namespace
}  // namespace cgn::ctl::pcp::test
