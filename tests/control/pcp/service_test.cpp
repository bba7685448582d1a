// The PCP service step (control/pcp/service.hpp): answers released after their changes are
// stored, the state back after a restart with the epoch continuing, a store that cannot
// commit turning answers into NO_RESOURCES.
#include "control/pcp/service.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/control/pcp/fake_nat.hpp"
#include "tests/control/pcp/pcp_test_util.hpp"

namespace cgn::ctl::pcp::test {
namespace {

ServerSettings settings() {
    ServerSettings s;
    s.subscribers = {*common::Ipv4Prefix::parse("100.64.0.0/10")};
    s.max_mappings_per_subscriber = 10000;
    s.request_burst = 10000;
    return s;
}

Bytes map_bytes(Ipv4Address from, uint16_t port, uint32_t lifetime) {
    return encoded_request(map_request(from, 6, port, lifetime));
}

// A server, its NAT and its service over the store in `dir`, as cgnd has them after a start.
struct Node {
    Node(const std::string& dir, common::ManualClock& wall, uint64_t max_bytes = 1u << 24)
        : store(dir, max_bytes), server(settings(), nat, clock), service(server, &store, wall) {}
    common::ManualClock clock{5'000};
    FakeNat nat;
    MappingStore store;
    Server server;
    Service service;
};

TEST(PcpService, AMappingSurvivesARestartAndTheEpochContinues) {
    TempDir dir("cgn-service");
    common::ManualClock wall(1'800'000'000'000ull);
    uint16_t external = 0;
    {
        Node n(dir.path(), wall);
        wall.advance_ms(3'000);
        n.clock.advance_ms(3'000);
        const Bytes q = map_bytes(kSub1, 8080, 3600);
        const std::vector<Received> batch = {Received{kSub1, 5350, q}};
        const auto answers = n.service.serve(batch);
        ASSERT_EQ(answers.size(), 1u);
        const auto r = decode_response(answers[0].bytes);
        ASSERT_TRUE(r && r->result == ResultCode::success);
        EXPECT_EQ(r->epoch, 3u);
        external = r->map->external_port;
        EXPECT_EQ(answers[0].to, kSub1);
        EXPECT_EQ(answers[0].port, 5350);
    }
    // cgnd comes back 100 s later (its monotonic clock starts again).
    wall.advance_ms(100'000);
    Node again(dir.path(), wall);
    EXPECT_EQ(again.service.tally().restored, 1u);
    EXPECT_EQ(again.server.epoch(), 103u) << "§8.5: the epoch did not restart";
    ASSERT_EQ(again.server.mappings().size(), 1u);
    EXPECT_EQ(again.server.mappings().begin()->second.external.port, external);
    EXPECT_EQ(again.nat.reserved.size(), 1u) << "reserved in the NAT again";
    // Its remaining lifetime is 3600 - 100 s: expired 3500 s on, not before.
    again.clock.advance_ms(3'499'000);
    again.service.expire();
    EXPECT_EQ(again.server.mappings().size(), 1u);
    again.clock.advance_ms(1'000);
    wall.advance_ms(3'500'000);
    again.service.expire();
    EXPECT_EQ(again.server.mappings().size(), 0u);
    EXPECT_EQ(again.service.tally().expired, 1u);
}

// §14.2: a mapping the NAT cannot take back after the restart (its port went to another
// subscriber meanwhile) is gone; its client is told, unsolicited, with lifetime 0.
TEST(PcpService, AClientWhoseMappingCouldNotComeBackIsTold) {
    TempDir dir("cgn-service");
    common::ManualClock wall(1'800'000'000'000ull);
    {
        Node n(dir.path(), wall);
        const Bytes q = map_bytes(kSub1, 8080, 3600);
        const std::vector<Received> batch = {Received{kSub1, 5350, q}};
        ASSERT_EQ(n.service.serve(batch).size(), 1u);
    }
    common::ManualClock clock{5'000};
    FakeNat nat;
    nat.taken.insert(20000);  // the port the mapping had
    MappingStore store(dir.path());
    Server server(settings(), nat, clock);
    Service service(server, &store, wall);
    EXPECT_EQ(service.tally().restored, 0u);
    auto told = service.take_unsolicited();
    ASSERT_EQ(told.size(), 1u);
    EXPECT_EQ(told[0].to, kSub1);
    EXPECT_EQ(told[0].port, 5350);
    const auto r = decode_response(told[0].bytes);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->opcode, Opcode::map);
    EXPECT_EQ(r->result, ResultCode::success);
    EXPECT_EQ(r->lifetime, 0u);
    EXPECT_EQ(r->map->internal_port, 8080);
    EXPECT_EQ(r->map->external_port, 20000);
    EXPECT_EQ(r->map->nonce, nonce_1_to_12());
    EXPECT_TRUE(service.take_unsolicited().empty()) << "told once";
}

TEST(PcpService, DeletedAndExpiredMappingsAreForgottenByTheStore) {
    TempDir dir("cgn-service");
    common::ManualClock wall(1'800'000'000'000ull);
    {
        Node n(dir.path(), wall);
        const Bytes a = map_bytes(kSub1, 1, 600), b = map_bytes(kSub1, 2, 600),
                    del = map_bytes(kSub1, 1, 0);
        const std::vector<Received> batch = {Received{kSub1, 5350, a}, Received{kSub1, 5350, b},
                                             Received{kSub1, 5350, del}};
        EXPECT_EQ(n.service.serve(batch).size(), 3u);
    }
    {
        Node n(dir.path(), wall);
        ASSERT_EQ(n.server.mappings().size(), 1u);
        EXPECT_EQ(n.server.mappings().begin()->first.internal_port, 2);
        n.clock.advance_ms(600'000);
        wall.advance_ms(600'000);
        n.service.expire();
    }
    Node last(dir.path(), wall);
    EXPECT_TRUE(last.server.mappings().empty());
}

// A store that cannot take the batch (full): the answers that changed something say
// NO_RESOURCES, the others are sent as they are.
TEST(PcpService, WhatCouldNotBeStoredIsNotAnsweredAsDone) {
    TempDir dir("cgn-service");
    common::ManualClock wall(1'800'000'000'000ull);
    Node n(dir.path(), wall, 64 * 1024);  // a 64 KiB database fills quickly
    std::vector<Bytes> requests;
    std::vector<Ipv4Address> from;
    // 2000 subscribers asking one mapping each (one subscriber's requests wait in a short
    // queue behind each other).
    for (uint16_t p = 1; p <= 2000; ++p) {
        from.push_back(Ipv4Address{kSub1.value + p});
        requests.push_back(map_bytes(from.back(), p, 600));
    }
    Bytes announce(kMaxMessage);
    Request a;
    a.client_address = IpAddress::from_ipv4(kSub1);
    announce.resize(encode_request(a, announce));
    std::vector<Received> batch;
    for (size_t k = 0; k < requests.size(); ++k)
        batch.push_back(Received{from[k], 5350, requests[k], k + 1});
    batch.push_back(Received{kSub1, 5350, announce, 5000});
    const auto answers = n.service.serve(batch);
    ASSERT_EQ(answers.size(), 2001u);
    EXPECT_EQ(n.service.tally().store_failures, 1u);
    EXPECT_NE(n.service.last_store_error().find("MDB_MAP_FULL"), std::string::npos)
        << n.service.last_store_error();
    for (const Answer& answer : answers) {
        const auto r = decode_response(answer.bytes);
        ASSERT_TRUE(r);
        if (answer.tag == 5000) {
            EXPECT_EQ(r->result, ResultCode::success) << "the ANNOUNCE changed nothing";
            continue;
        }
        EXPECT_EQ(answer.to, from[answer.tag - 1]);
        EXPECT_EQ(r->result, ResultCode::no_resources);
        EXPECT_EQ(r->lifetime, 30u);
        EXPECT_EQ(r->map->internal_port, answer.tag) << "the request's own data (§7.3)";
    }
}

}  // namespace
}  // namespace cgn::ctl::pcp::test
