// The PCP service step (control/pcp/service.hpp): answers released after their changes are
// stored, the state back after a restart with the epoch continuing, a store that cannot
// commit turning answers into NO_RESOURCES, the operator's removals told to the clients.
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
    s.third_party_sources = {*common::Ipv4Prefix::parse("100.64.255.0/24")};
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

// Each request dropped unanswered is counted under its reason (cgnd's pcp_dropped_* lines),
// and the reasons add up to pcp_dropped. Without them an operator cannot tell a source outside
// --pcp-subscribers from a flooding subscriber or a broken client.
TEST(PcpService, EachDropIsCountedUnderItsReason) {
    ServerSettings s = settings();
    s.requests_per_second = 1;
    s.request_burst = 40;
    common::ManualClock clock{5'000};
    common::ManualClock wall{1'800'000'000'000ull};
    FakeNat nat;
    Server server(s, nat, clock);
    Service service(server, nullptr, wall);
    const Bytes q = map_bytes(kSub1, 80, 600);
    Bytes response = q;
    response[1] |= 0x80;  // the R bit: a response, which a server drops (§8.3)
    const Bytes one_octet = {2};
    const Bytes outsider = map_bytes(ip("192.0.2.10"), 80, 600);
    std::vector<Received> batch = {
        Received{ip("192.0.2.10"), 5350, outsider},
        Received{kSub2, 5350, response},
        Received{kSub2, 5350, one_octet},
    };
    service.serve(batch);
    // One at a time (in one batch, they would wait behind the first's NAT request): 40 of the
    // burst, then one over the rate.
    for (int i = 0; i < 41; ++i) {
        const std::vector<Received> one = {Received{kSub1, 5350, q}};
        service.serve(one);
        service.serve({});  // the NAT's answer to a create
    }
    // A third subscriber's requests wait behind its first, which the NAT has not answered:
    // 32 wait, the 33rd behind it has no room.
    const Ipv4Address sub3 = ip("100.64.0.30");
    nat.defer = true;
    batch.clear();
    std::vector<Bytes> requests;  // the batch's spans point into these
    for (uint16_t i = 0; i < 34; ++i) requests.push_back(map_bytes(sub3, 9000 + i, 600));
    for (const Bytes& b : requests) batch.push_back(Received{sub3, 5350, b});
    service.serve(batch);
    const ServiceTally& t = service.tally();
    EXPECT_EQ(t.dropped_not_subscriber, 1u);
    EXPECT_EQ(t.dropped_not_a_request, 2u);
    EXPECT_EQ(t.dropped_over_rate, 1u);
    EXPECT_EQ(t.dropped_too_many_waiting, 1u);
    EXPECT_EQ(t.dropped, 5u);
    EXPECT_EQ(t.answered, 40u);
}

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

// Maps `port` for `from` through the service; the external port granted.
uint16_t map_through(Service& service, Ipv4Address from, uint16_t port) {
    const Bytes q = map_bytes(from, port, 3600);
    const std::vector<Received> batch = {Received{from, 5350, q}};
    const auto answers = service.serve(batch);
    EXPECT_EQ(answers.size(), 1u);
    const auto r = answers.empty() ? std::nullopt : decode_response(answers[0].bytes);
    EXPECT_TRUE(r && r->result == ResultCode::success);
    return r && r->map ? r->map->external_port : 0;
}

// RFC 6887 §14.2 for an operator's removal ("pcp del tcp 100.64.0.11:8080"): the mapping is
// given back to the NAT, its removal is committed at once (a restart does not bring it
// back), and its client is told with an unsolicited MAP response of lifetime 0, to its
// address and port 5350. The subscriber's other mapping stays.
TEST(PcpService, AnOperatorsRemovalIsStoredAndToldToTheClient) {
    TempDir dir("cgn-service");
    common::ManualClock wall(1'800'000'000'000ull);
    uint16_t removed_port = 0, kept_port = 0;
    {
        Node n(dir.path(), wall);
        removed_port = map_through(n.service, kSub1, 8080);
        kept_port = map_through(n.service, kSub1, 8081);
        ASSERT_EQ(n.nat.reserved.size(), 2u);
        n.clock.advance_ms(7'000);

        Server::OperatorSelection which;
        which.internal = kSub1;
        which.protocol = 6;
        which.internal_port = 8080;
        const OperatorRemoval done = n.service.remove_by_operator(which);
        EXPECT_TRUE(done.stored);
        ASSERT_EQ(done.removed.size(), 1u);
        EXPECT_EQ(done.removed[0].first, (MappingKey{kSub1, 6, 8080}));
        EXPECT_EQ(done.removed[0].second.external.port, removed_port);
        EXPECT_EQ(n.service.tally().removed_by_operator, 1u);
        EXPECT_EQ(n.nat.reserved.count(MappingKey{kSub1, 6, 8080}), 0u) << "given back";
        EXPECT_EQ(n.nat.reserved.size(), 1u);
        ASSERT_EQ(n.server.mappings().size(), 1u);

        const auto told = n.service.take_unsolicited();
        ASSERT_EQ(told.size(), 1u);
        EXPECT_EQ(told[0].to, kSub1);
        EXPECT_EQ(told[0].port, kClientPort);
        EXPECT_EQ(told[0].tag, 0u) << "answers no request";
        // The bytes as the client reads them: §7.2 header, §11.1 MAP data.
        const Bytes& b = told[0].bytes;
        ASSERT_EQ(b.size(), 60u);
        EXPECT_EQ(b[0], 2) << "version";
        EXPECT_EQ(b[1], 0x81) << "R bit and MAP";
        EXPECT_EQ(b[3], 0) << "SUCCESS";
        EXPECT_EQ((uint32_t{b[4]} << 24 | b[5] << 16 | b[6] << 8 | b[7]), 0u) << "lifetime 0";
        EXPECT_EQ((uint32_t{b[8]} << 24 | b[9] << 16 | b[10] << 8 | b[11]), 7u) << "epoch";
        const auto r = decode_response(b);
        ASSERT_TRUE(r && r->map);
        EXPECT_EQ(r->opcode, Opcode::map);
        EXPECT_EQ(r->result, ResultCode::success);
        EXPECT_EQ(r->lifetime, 0u);
        EXPECT_EQ(r->map->nonce, nonce_1_to_12());
        EXPECT_EQ(r->map->protocol, 6);
        EXPECT_EQ(r->map->internal_port, 8080);
        EXPECT_EQ(r->map->external_port, removed_port);
        EXPECT_EQ(r->map->external_address, IpAddress::from_ipv4(kPaired));
        EXPECT_TRUE(n.service.take_unsolicited().empty()) << "told once";

        // Nothing left to remove: nothing removed, nobody told.
        EXPECT_TRUE(n.service.remove_by_operator(which).removed.empty());
        EXPECT_TRUE(n.service.take_unsolicited().empty());
    }
    // The store forgot it (committed before remove_by_operator returned); the other is back.
    Node again(dir.path(), wall);
    ASSERT_EQ(again.server.mappings().size(), 1u);
    EXPECT_EQ(again.server.mappings().begin()->first, (MappingKey{kSub1, 6, 8081}));
    EXPECT_EQ(again.server.mappings().begin()->second.external.port, kept_port);
    EXPECT_TRUE(again.service.take_unsolicited().empty());
}

// "pcp del subscriber ADDRESS" and a pool address drained: every mapping the selection names,
// no other; each client told once.
TEST(PcpService, AnOperatorRemovesASubscribersOrAnExternalAddresssMappings) {
    TempDir dir("cgn-service");
    common::ManualClock wall(1'800'000'000'000ull);
    Node n(dir.path(), wall);
    map_through(n.service, kSub1, 1000);
    map_through(n.service, kSub1, 1001);
    const uint16_t sub2_port = map_through(n.service, kSub2, 1000);
    Server::OperatorSelection none;
    none.internal = ip("100.64.0.99");
    EXPECT_TRUE(n.service.remove_by_operator(none).removed.empty());

    Server::OperatorSelection of_sub1;
    of_sub1.internal = kSub1;
    EXPECT_EQ(n.server.selected(of_sub1).size(), 2u);
    EXPECT_EQ(n.server.mappings().size(), 3u) << "selected() removes nothing";
    EXPECT_EQ(n.service.remove_by_operator(of_sub1).removed.size(), 2u);
    auto told = n.service.take_unsolicited();
    ASSERT_EQ(told.size(), 2u);
    for (const Answer& a : told) EXPECT_EQ(a.to, kSub1);
    EXPECT_EQ(n.server.mappings_of(kSub1), 0u);
    ASSERT_EQ(n.server.mappings().size(), 1u);

    Server::OperatorSelection on_port;
    on_port.external = kPaired;
    on_port.protocol = 17;
    EXPECT_TRUE(n.service.remove_by_operator(on_port).removed.empty()) << "TCP only mapped";
    on_port.protocol = 6;
    on_port.external_port = sub2_port;
    const auto done = n.service.remove_by_operator(on_port);
    ASSERT_EQ(done.removed.size(), 1u);
    EXPECT_EQ(done.removed[0].first.internal, kSub2);
    told = n.service.take_unsolicited();
    ASSERT_EQ(told.size(), 1u);
    EXPECT_EQ(told[0].to, kSub2);
    EXPECT_TRUE(n.server.mappings().empty());
    EXPECT_TRUE(n.nat.reserved.empty());
}

// Who is told of an operator's removal: the operator system that asked for another host,
// with THIRD_PARTY naming that host (as its answers did, §13.1); nobody for a NAT-PMP
// mapping (RFC 6886 has no such message, and a version-2 packet means nothing to its client).
// Without the THIRD_PARTY option the first check of `third` fails; without the NAT-PMP
// exception, two answers are told.
TEST(PcpService, AnOperatorsRemovalTellsTheThirdPartyAndNotNatPmpClients) {
    TempDir dir("cgn-service");
    common::ManualClock wall(1'800'000'000'000ull);
    Node n(dir.path(), wall);
    Request third = map_request(kOperator, 6, 2000, 3600);
    third.options.third_party = IpAddress::from_ipv4(kSub2);
    const Bytes q = encoded_request(third);
    // RFC 6886 §3.3: version 0, opcode 2 (TCP), reserved, internal port 2001, suggested 0,
    // lifetime 3600.
    const Bytes natpmp{0, 2, 0, 0, 0x07, 0xd1, 0, 0, 0, 0, 0x0e, 0x10};
    const std::vector<Received> batch = {Received{kOperator, 5350, q, 1},
                                         Received{kSub1, 5350, natpmp, 2}};
    ASSERT_EQ(n.service.serve(batch).size(), 2u);
    ASSERT_EQ(n.server.mappings().size(), 2u);
    ASSERT_TRUE(n.server.mappings().at(MappingKey{kSub1, 6, 2001}).natpmp);

    EXPECT_EQ(n.service.remove_by_operator({}).removed.size(), 2u);
    const auto told = n.service.take_unsolicited();
    ASSERT_EQ(told.size(), 1u);
    EXPECT_EQ(told[0].to, kOperator);
    const auto r = decode_response(told[0].bytes);
    ASSERT_TRUE(r && r->map);
    EXPECT_EQ(r->lifetime, 0u);
    EXPECT_EQ(r->options.third_party, IpAddress::from_ipv4(kSub2));
}

// RFC 6887 §14.1.3 and §8.5 ("pcp reset"): the state discarded is state lost. Every mapping
// goes (store included), the epoch starts again at 0 (and continues from there after a
// restart), and each client is told once: an ANNOUNCE response of epoch 0 to a PCP client,
// an external address response of epoch 0 to a NAT-PMP client (RFC 6886 §3.6). Without the
// reset of the epoch base the ANNOUNCE check of the epoch fails; without the one-per-client
// rule three messages are told.
TEST(PcpService, AResetDiscardsTheStateRestartsTheEpochAndTellsEachClientOnce) {
    TempDir dir("cgn-service");
    common::ManualClock wall(1'800'000'000'000ull);
    {
        Node n(dir.path(), wall);
        map_through(n.service, kSub1, 3000);
        map_through(n.service, kSub1, 3001);
        // RFC 6886 §3.3: version 0, opcode 1 (UDP), internal port 3002, lifetime 3600.
        const Bytes natpmp{0, 1, 0, 0, 0x0b, 0xba, 0, 0, 0, 0, 0x0e, 0x10};
        ASSERT_EQ(n.service.serve(std::vector<Received>{Received{kSub2, 5350, natpmp, 1}}).size(),
                  1u);
        n.clock.advance_ms(50'000);
        wall.advance_ms(50'000);
        ASSERT_EQ(n.server.epoch(), 50u);

        const Service::Reset done = n.service.reset();
        EXPECT_TRUE(done.removal.stored);
        EXPECT_EQ(done.removal.removed.size(), 3u);
        EXPECT_EQ(done.clients, 2u);
        EXPECT_TRUE(n.server.mappings().empty());
        EXPECT_TRUE(n.nat.reserved.empty()) << "given back to the NAT";
        EXPECT_EQ(n.server.epoch(), 0u);
        const auto told = n.service.take_unsolicited();
        ASSERT_EQ(told.size(), 2u);
        const auto announce = decode_response(told[0].bytes);
        ASSERT_TRUE(announce);
        EXPECT_EQ(told[0].to, kSub1);
        EXPECT_EQ(told[0].port, kClientPort);
        EXPECT_EQ(announce->opcode, Opcode::announce);
        EXPECT_EQ(announce->result, ResultCode::success);
        EXPECT_EQ(announce->epoch, 0u);
        // RFC 6886 §3.2: version 0, opcode 128, result 0, epoch 0, the external address.
        EXPECT_EQ(told[1].to, kSub2);
        const Bytes& b = told[1].bytes;
        ASSERT_EQ(b.size(), 12u);
        EXPECT_EQ((Bytes{b.begin(), b.begin() + 8}), (Bytes{0, 128, 0, 0, 0, 0, 0, 0}));
        EXPECT_EQ((uint32_t{b[8]} << 24 | b[9] << 16 | b[10] << 8 | b[11]), kPaired.value);
        EXPECT_TRUE(n.service.take_unsolicited().empty()) << "told once";
        n.clock.advance_ms(7'000);
        wall.advance_ms(7'000);
        EXPECT_EQ(n.server.epoch(), 7u);
    }
    // After a restart 3 s later: nothing comes back, and the epoch counts from the reset.
    wall.advance_ms(3'000);
    Node again(dir.path(), wall);
    EXPECT_TRUE(again.server.mappings().empty());
    EXPECT_EQ(again.server.epoch(), 10u);
    EXPECT_TRUE(again.service.take_unsolicited().empty());
}

// A port set (RFC 7753) removed by the operator is one mapping to its client: one
// unsolicited answer, through its first port, carrying the set's PORT_SET. Without that rule
// the client gets four answers, three of them for ports it never asked about by name.
TEST(PcpService, AnOperatorsRemovalOfAPortSetIsToldOnce) {
    TempDir dir("cgn-service");
    common::ManualClock wall(1'800'000'000'000ull);
    Node n(dir.path(), wall);
    Request r = map_request(kSub1, 17, 6000, 3600);
    r.options.port_set = PortSet{4, 6000, false};
    const auto answers = n.service.serve(std::vector<Received>{Received{kSub1, 5350,
                                                                         encoded_request(r), 1}});
    ASSERT_EQ(answers.size(), 1u);
    const auto granted = decode_response(answers[0].bytes);
    ASSERT_TRUE(granted && granted->options.port_set);
    ASSERT_EQ(granted->options.port_set->size, 4u);
    ASSERT_EQ(n.server.mappings().size(), 4u);

    Server::OperatorSelection which;
    which.internal = kSub1;
    EXPECT_EQ(n.service.remove_by_operator(which).removed.size(), 4u);
    const auto told = n.service.take_unsolicited();
    ASSERT_EQ(told.size(), 1u);
    const auto gone = decode_response(told[0].bytes);
    ASSERT_TRUE(gone && gone->map && gone->options.port_set);
    EXPECT_EQ(gone->lifetime, 0u);
    EXPECT_EQ(gone->map->internal_port, 6000);
    EXPECT_EQ(gone->map->external_port, granted->map->external_port);
    EXPECT_EQ(gone->options.port_set->size, 4u);
    EXPECT_EQ(gone->options.port_set->first_internal_port, 6000);
}

}  // namespace
}  // namespace cgn::ctl::pcp::test
