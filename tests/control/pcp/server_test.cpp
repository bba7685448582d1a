// The PCP service (control/pcp/server.hpp) against a fake NAT and a manual clock: every rule
// of RFC 6887 it implements, shown by the bytes it answers and the changes it reports.
#include "control/pcp/server.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "tests/control/pcp/fake_nat.hpp"
#include "tests/control/pcp/pcp_test_util.hpp"

namespace cgn::ctl::pcp::test {
namespace {

using common::Ipv4Address;

class PcpServer : public testing::Test {
protected:
    PcpServer() : server_(settings(), nat_, clock_) {}

    static ServerSettings settings() {
        ServerSettings s;
        s.subscribers = {*common::Ipv4Prefix::parse("100.64.0.0/10")};
        s.third_party_sources = {*common::Ipv4Prefix::parse("100.64.255.0/24")};
        s.max_mappings_per_subscriber = 3;
        s.requests_per_second = 5;
        s.request_burst = 10;
        return s;
    }


    // Sends a request from `from` and decodes the answer (which must be a PCP response).
    Response send(const Request& r, Ipv4Address from) {
        Bytes b(kMaxMessage);
        b.resize(encode_request(r, b));
        last_ = serve_now(server_, Received{from, kClientPort, b});
        EXPECT_FALSE(last_.reply.empty()) << "dropped: " << last_.dropped;
        std::string why;
        auto resp = decode_response(last_.reply, &why);
        EXPECT_TRUE(resp.has_value()) << why;
        return resp.value_or(Response{});
    }
    Response send(const Request& r) { return send(r, ip_of(r)); }
    static Ipv4Address ip_of(const Request& r) { return *r.client_address.ipv4(); }

    common::ManualClock clock_;
    FakeNat nat_;
    Server server_;
    Outcome last_;
};

TEST_F(PcpServer, MapCreatesAMappingOnThePairedAddressAndReportsIt) {
    const Response r = send(map_request(kSub1, 6, 8080, 3600));
    EXPECT_EQ(r.result, ResultCode::success);
    EXPECT_EQ(r.opcode, Opcode::map);
    EXPECT_EQ(r.lifetime, 3600u);
    ASSERT_TRUE(r.map);
    EXPECT_EQ(r.map->nonce, nonce_1_to_12());
    EXPECT_EQ(r.map->internal_port, 8080);
    EXPECT_EQ(r.map->external_address, IpAddress::from_ipv4(kPaired));
    EXPECT_EQ(r.map->external_port, 20000);
    ASSERT_EQ(last_.changes.size(), 1u);
    EXPECT_EQ(last_.changes[0].kind, Change::Kind::created);
    EXPECT_EQ(last_.changes[0].key, (MappingKey{kSub1, 6, 8080}));
    EXPECT_EQ(server_.mappings_of(kSub1), 1u);
}

TEST_F(PcpServer, TheSuggestedPortIsHonouredWhenFreeAndAllowed) {
    EXPECT_EQ(send(map_request(kSub1, 6, 8080, 3600, 8080)).map->external_port, 8080);
    // Taken now: sub2 gets another port, unless it prefers failure (§13.2).
    EXPECT_EQ(send(map_request(kSub2, 6, 8080, 3600, 8080)).map->external_port, 20000);
    Request exact = map_request(kSub2, 17, 8080, 3600, 8080);
    nat_.taken.insert(8080);
    exact.options.prefer_failure = true;
    const Response r = send(exact);
    EXPECT_EQ(r.result, ResultCode::cannot_provide_external);
    EXPECT_EQ(r.lifetime, 30u) << "a short lifetime error (§7.4)";
    EXPECT_TRUE(last_.changes.empty());
    // A suggestion below the ports clients may ask for is no suggestion.
    EXPECT_EQ(send(map_request(kSub2, 17, 5060, 3600, 80)).map->external_port, 20001);
}

// §11.3: a MAP for an internal endpoint that already has a dynamic mapping returns it.
TEST_F(PcpServer, MapReturnsTheExistingDynamicMapping) {
    nat_.dynamic[MappingKey{kSub1, 17, 40000}] = Endpoint{kPaired, 45678};
    nat_.taken.insert(45678);
    const Response r = send(map_request(kSub1, 17, 40000, 600));
    EXPECT_EQ(r.result, ResultCode::success);
    EXPECT_EQ(r.map->external_port, 45678);
}

TEST_F(PcpServer, LifetimesAreClampedToTheConfiguredBounds) {
    EXPECT_EQ(send(map_request(kSub1, 6, 1, 10)).lifetime, 120u) << "§15: at least 120 s";
    EXPECT_EQ(send(map_request(kSub1, 6, 2, 999999)).lifetime, 86400u);
}

// §11.3 and §15: refresh and delete need the mapping's nonce; deleting an absent mapping
// succeeds; lifetime 0 removes it and frees its port.
TEST_F(PcpServer, RefreshAndDeleteCheckTheNonce) {
    send(map_request(kSub1, 6, 8080, 600));
    Request other = map_request(kSub1, 6, 8080, 600);
    other.map->nonce[0] ^= 0xff;
    EXPECT_EQ(send(other).result, ResultCode::not_authorized);
    other.lifetime = 0;
    EXPECT_EQ(send(other).result, ResultCode::not_authorized);
    EXPECT_EQ(server_.mappings_of(kSub1), 1u);

    clock_.advance_ms(100'000);
    const Response refreshed = send(map_request(kSub1, 6, 8080, 600));
    EXPECT_EQ(refreshed.result, ResultCode::success);
    EXPECT_EQ(refreshed.map->external_port, 20000) << "the same endpoint";
    EXPECT_EQ(last_.changes.at(0).kind, Change::Kind::refreshed);

    const Response deleted = send(map_request(kSub1, 6, 8080, 0));
    EXPECT_EQ(deleted.result, ResultCode::success);
    EXPECT_EQ(deleted.lifetime, 0u);
    EXPECT_EQ(last_.changes.at(0).kind, Change::Kind::removed);
    EXPECT_EQ(server_.mappings_of(kSub1), 0u);
    EXPECT_EQ(nat_.taken.count(20000), 0u) << "its port went back";
    EXPECT_EQ(send(map_request(kSub1, 6, 8080, 0)).result, ResultCode::success)
        << "deleting what is not there succeeds";
    EXPECT_TRUE(last_.changes.empty());
}

TEST_F(PcpServer, TcpAndUdpMappingsOfOnePortAreTwoMappings) {
    EXPECT_EQ(send(map_request(kSub1, 6, 5000, 600, 5000)).map->external_port, 5000);
    EXPECT_EQ(send(map_request(kSub1, 17, 5000, 600)).result, ResultCode::success);
    EXPECT_EQ(server_.mappings_of(kSub1), 2u);
    // Protocol 0, lifetime 0 (§11.1): every mapping of the address with this nonce goes.
    EXPECT_EQ(send(map_request(kSub1, 0, 0, 0)).result, ResultCode::success);
    EXPECT_EQ(last_.changes.size(), 2u);
    EXPECT_EQ(server_.mappings_of(kSub1), 0u);
}

TEST_F(PcpServer, AllProtocolsAllPortsAndOtherProtocolsAreRefused) {
    EXPECT_EQ(send(map_request(kSub1, 0, 0, 600)).result, ResultCode::unsupp_protocol);
    EXPECT_EQ(send(map_request(kSub1, 1, 0, 600)).result, ResultCode::unsupp_protocol);
    EXPECT_EQ(send(map_request(kSub1, 6, 0, 600)).result, ResultCode::not_authorized);
}

TEST_F(PcpServer, TheSubscribersMappingQuotaGivesUserExQuota) {
    for (uint16_t p = 1; p <= 3; ++p)
        EXPECT_EQ(send(map_request(kSub1, 17, p, 600)).result, ResultCode::success);
    const Response r = send(map_request(kSub1, 17, 4, 600));
    EXPECT_EQ(r.result, ResultCode::user_ex_quota);
    EXPECT_EQ(r.lifetime, 30u) << "short lifetime (§7.4)";
    EXPECT_EQ(send(map_request(kSub2, 17, 4, 600)).result, ResultCode::success)
        << "another subscriber's quota is its own";
    EXPECT_EQ(send(map_request(kSub1, 17, 1, 600)).result, ResultCode::success)
        << "a refresh is not a new mapping";
}

TEST_F(PcpServer, TheNatsRefusalIsTheAnswer) {
    nat_.fail_with = ResultCode::no_resources;
    EXPECT_EQ(send(map_request(kSub1, 6, 80, 600)).result, ResultCode::no_resources);
    EXPECT_EQ(server_.mappings_of(kSub1), 0u);
}

// §8.3: the client address field must be the source; §7.3: the error answer copies the request.
TEST_F(PcpServer, AClientAddressOtherThanTheSourceIsAddressMismatch) {
    const Request r = map_request(kSub1, 6, 80, 600);
    Bytes b(kMaxMessage);
    b.resize(encode_request(r, b));
    const Outcome out = serve_now(server_, Received{kSub2, kClientPort, b});
    ASSERT_EQ(out.reply.size(), b.size());
    EXPECT_EQ(out.result, ResultCode::address_mismatch);
    EXPECT_EQ(out.reply[3], 12);
    EXPECT_TRUE(std::equal(b.begin() + 24, b.end(), out.reply.begin() + 24))
        << "the opcode data copied";
    EXPECT_EQ(server_.mappings_of(kSub1) + server_.mappings_of(kSub2), 0u);
}

// §13.1: THIRD_PARTY from an operator source maps for the subscriber named; from anyone
// else it is NOT_AUTHORIZED.
TEST_F(PcpServer, ThirdPartyOnlyFromOperatorSources) {
    Request r = map_request(kSub1, 6, 443, 600);
    r.options.third_party = IpAddress::from_ipv4(kSub2);
    EXPECT_EQ(send(r).result, ResultCode::not_authorized);
    EXPECT_EQ(server_.mappings_of(kSub2), 0u);

    Request op = map_request(kOperator, 6, 443, 600);
    op.options.third_party = IpAddress::from_ipv4(kSub2);
    const Response ok = send(op);
    EXPECT_EQ(ok.result, ResultCode::success);
    EXPECT_EQ(ok.options.third_party, op.options.third_party) << "echoed";
    EXPECT_EQ(server_.mappings_of(kSub2), 1u);
    EXPECT_EQ(server_.mappings().begin()->second.client, IpAddress::from_ipv4(kOperator));

    Request outside = op;
    outside.options.third_party = v4("192.0.2.50");
    EXPECT_EQ(send(outside).result, ResultCode::not_authorized) << "only for subscribers";
}

// §18: nothing is answered to sources that are not subscribers; a subscriber's excess
// requests are dropped before they are decoded.
TEST_F(PcpServer, NonSubscribersAndExcessRequestsAreDroppedUnanswered) {
    Bytes b(kMaxMessage);
    b.resize(encode_request(map_request(ip("192.0.2.10"), 6, 80, 600), b));
    const Outcome out = serve_now(server_, Received{ip("192.0.2.10"), kClientPort, b});
    EXPECT_TRUE(out.reply.empty());
    EXPECT_EQ(out.dropped, "source is not a subscriber address");

    unsigned answered = 0, dropped = 0;
    b.resize(kMaxMessage);
    b.resize(encode_request(map_request(kSub1, 6, 80, 600), b));
    for (int i = 0; i < 30; ++i) {
        const Outcome o = serve_now(server_, Received{kSub1, kClientPort, b});
        (o.reply.empty() ? dropped : answered) += 1;
    }
    EXPECT_EQ(answered, 10u) << "the burst";
    EXPECT_EQ(dropped, 20u);
    EXPECT_EQ(serve_now(server_, Received{kSub2, kClientPort, b}).result,
              ResultCode::address_mismatch)
        << "another subscriber is still served";
    clock_.advance_ms(1000);  // 5 per second
    answered = 0;
    for (int i = 0; i < 10; ++i)
        answered += serve_now(server_, Received{kSub1, kClientPort, b}).reply.empty() ? 0 : 1;
    EXPECT_EQ(answered, 5u);
}

TEST_F(PcpServer, MalformedRequestsAreAnsweredWithTheirErrorAndDroppedOnesAreNot) {
    Bytes b(kMaxMessage);
    b.resize(encode_request(map_request(kSub1, 6, 80, 600), b));
    b.push_back(0);
    b.push_back(0);  // 62 octets: not a multiple of 4
    Outcome o = serve_now(server_, Received{kSub1, kClientPort, b});
    EXPECT_EQ(o.result, ResultCode::malformed_request);
    EXPECT_EQ(decode_response(o.reply)->lifetime, 1800u) << "a long lifetime error (§7.4)";
    o = serve_now(server_, Received{kSub1, kClientPort, Bytes{2}});
    EXPECT_TRUE(o.reply.empty());
    EXPECT_EQ(o.dropped, "shorter than 2 octets");
}

TEST_F(PcpServer, AnnounceAnswersWithTheEpoch) {
    clock_.advance_ms(5500);
    Request a;
    a.client_address = IpAddress::from_ipv4(kSub1);
    const Response r = send(a);
    EXPECT_EQ(r.opcode, Opcode::announce);
    EXPECT_EQ(r.result, ResultCode::success);
    EXPECT_EQ(r.epoch, 5u);
    EXPECT_TRUE(last_.changes.empty());
}

TEST_F(PcpServer, MappingsExpireAtTheEndOfTheirLifetimeNotBefore) {
    send(map_request(kSub1, 6, 80, 200));
    clock_.advance_ms(150'000);
    send(map_request(kSub1, 6, 80, 200));  // refreshed: 200 s from now
    clock_.advance_ms(199'000);
    EXPECT_TRUE(server_.expire().empty()) << "the first lifetime's end is past, not the second's";
    clock_.advance_ms(1'000);
    const auto gone = server_.expire();
    ASSERT_EQ(gone.size(), 1u);
    EXPECT_EQ(gone[0].kind, Change::Kind::removed);
    EXPECT_EQ(server_.mappings_of(kSub1), 0u);
    EXPECT_TRUE(nat_.taken.empty());
}

// §13.3: FILTERs accumulate, prefix 0 clears them, more than 16 is EXCESSIVE_REMOTE_PEERS.
TEST_F(PcpServer, FiltersAreKeptEchoedAndBounded) {
    Request r = map_request(kSub1, 6, 22, 600);
    r.options.filters = {Filter{120, 0, v4("203.0.113.0")}};
    EXPECT_EQ(send(r).options.filters, r.options.filters);
    r.options.filters = {Filter{128, 0, v4("192.0.2.20")}};
    EXPECT_EQ(send(r).options.filters.size(), 2u) << "added to the first";
    r.options.filters = {Filter{0, 0, IpAddress::ipv4_any()}};
    EXPECT_TRUE(send(r).options.filters.empty()) << "prefix 0 removes them";
    r.options.filters.clear();
    for (uint32_t i = 0; i < 17; ++i)
        r.options.filters.push_back(Filter{128, 0, IpAddress::from_ipv4(Ipv4Address{0xcb007100 + i})});
    EXPECT_EQ(send(r).result, ResultCode::excessive_remote_peers);
    EXPECT_TRUE(server_.mappings().at(MappingKey{kSub1, 6, 22}).filters.empty())
        << "an error changes nothing (§7.3)";
}

TEST_F(PcpServer, DescriptionIsStoredAndEchoed) {
    Request r = map_request(kSub1, 6, 8080, 600);
    r.options.description = "home web server";
    EXPECT_EQ(send(r).options.description, r.options.description);
    EXPECT_EQ(server_.mappings().at(MappingKey{kSub1, 6, 8080}).description, "home web server");
}

TEST_F(PcpServer, StaticMappingsCanBeNeitherTakenNorDeleted) {
    nat_.statics.insert(MappingKey{kSub1, 17, 5060});
    EXPECT_EQ(send(map_request(kSub1, 17, 5060, 600)).result, ResultCode::not_authorized);
    EXPECT_EQ(send(map_request(kSub1, 17, 5060, 0)).result, ResultCode::not_authorized);
}

// A PEER from kSub1's UDP port 40000 to 203.0.113.10:53.
Request peer_request(uint32_t lifetime) {
    Request r;
    r.opcode = Opcode::peer;
    r.lifetime = lifetime;
    r.client_address = IpAddress::from_ipv4(kSub1);
    PeerData p;
    p.nonce = nonce_1_to_12();
    p.protocol = 17;
    p.internal_port = 40000;
    p.external_address = IpAddress::ipv4_any();
    p.remote_port = 53;
    p.remote_address = v4("203.0.113.10");
    r.peer = p;
    return r;
}

TEST_F(PcpServer, PeerAsksTheNatForTheFlowWithTheGrantedLifetime) {
    Request r = peer_request(30);
    const PeerData p = *r.peer;
    const Response resp = send(r);
    EXPECT_EQ(resp.result, ResultCode::success);
    EXPECT_EQ(resp.lifetime, 120u);
    EXPECT_EQ(resp.peer->external_port, 31000);
    EXPECT_EQ(resp.peer->remote_address, p.remote_address);
    ASSERT_EQ(nat_.peers.size(), 1u);
    EXPECT_EQ(nat_.peers[0].second, 120u);
    EXPECT_EQ(server_.mappings_of(kSub1), 0u) << "PEER makes no explicit mapping";
    r.peer->remote_port = 0;
    EXPECT_EQ(send(r).result, ResultCode::malformed_request);
}

// The NAT (the workers) answers later: a subscriber's next requests wait behind the one in
// flight and are served in order once it is answered; other subscribers are not held up.
TEST_F(PcpServer, ASubscribersRequestsWaitBehindItsRequestToTheNatInOrder) {
    nat_.defer = true;
    const Bytes create = encoded_request(map_request(kSub1, 6, 8080, 600));
    const Bytes refresh = encoded_request(map_request(kSub1, 6, 8080, 900));
    const Bytes remove = encoded_request(map_request(kSub1, 6, 8080, 0));
    EXPECT_TRUE(server_.handle(Received{kSub1, kClientPort, create, 1}).pending);
    EXPECT_TRUE(server_.handle(Received{kSub1, kClientPort, refresh, 2}).pending)
        << "behind the create: it must see the mapping the create makes";
    EXPECT_TRUE(server_.handle(Received{kSub1, kClientPort, remove, 3}).pending);
    EXPECT_EQ(server_.waiting(), 3u);
    EXPECT_EQ(nat_.asked.size(), 1u) << "one question in flight for the subscriber";
    // Another subscriber is served meanwhile (its own question goes to the NAT at once).
    EXPECT_TRUE(server_.handle(Received{kSub2, kClientPort,
                                        encoded_request(map_request(kSub2, 6, 80, 600)), 4})
                    .pending);
    EXPECT_EQ(nat_.asked.size(), 2u);
    Request announce;
    announce.client_address = IpAddress::from_ipv4(kSub1);
    const Outcome a = server_.handle(Received{kSub1, kClientPort, encoded_request(announce), 5});
    EXPECT_FALSE(a.pending) << "ANNOUNCE changes nothing: answered at once";
    EXPECT_FALSE(a.reply.empty());
    EXPECT_TRUE(server_.poll_nat().empty()) << "nothing answered before the NAT";
    nat_.answer_later();
    const auto done = server_.poll_nat();
    ASSERT_EQ(done.size(), 4u);
    std::vector<uint64_t> tags;
    for (const Outcome& o : done) tags.push_back(o.tag);
    EXPECT_EQ(tags, (std::vector<uint64_t>{1, 2, 3, 4}));
    const auto lifetime = [](const Outcome& o) { return decode_response(o.reply)->lifetime; };
    EXPECT_EQ(lifetime(done[0]), 600u);
    EXPECT_EQ(lifetime(done[1]), 900u) << "a refresh of the mapping just made";
    EXPECT_EQ(lifetime(done[2]), 0u);
    EXPECT_EQ(done[2].changes.at(0).kind, Change::Kind::removed);
    EXPECT_EQ(server_.mappings_of(kSub1), 0u);
    EXPECT_EQ(server_.mappings_of(kSub2), 1u);
    EXPECT_EQ(server_.waiting(), 0u);
}

// A subscriber cannot queue without bound while the NAT is slow: past 32 behind, its requests
// are dropped (counted by the caller; the client retransmits).
TEST_F(PcpServer, RequestsWaitingBehindTheNatAreBounded) {
    nat_.defer = true;
    EXPECT_TRUE(serve_now(server_, Received{kSub1, kClientPort,
                                            encoded_request(map_request(kSub1, 6, 1, 600))})
                    .pending);
    size_t queued = 0, dropped = 0;
    for (uint16_t p = 2; p < 40; ++p) {
        clock_.advance_ms(1000);  // within the request rate
        const Outcome o = serve_now(
            server_, Received{kSub1, kClientPort, encoded_request(map_request(kSub1, 6, p, 600))});
        if (o.pending) ++queued;
        if (!o.pending && o.reply.empty()) {
            ++dropped;
            EXPECT_EQ(o.dropped, "too many requests of the subscriber waiting for the NAT");
        }
    }
    EXPECT_EQ(queued, 32u);
    EXPECT_EQ(dropped, 38u - 32u);
    EXPECT_EQ(server_.waiting(), 33u);
}

// §13.2: with PREFER_FAILURE, an existing dynamic mapping on another port is not the
// suggestion: CANNOT_PROVIDE_EXTERNAL, and the NAT is given the mapping back.
TEST_F(PcpServer, PreferFailureRefusesAnExistingMappingElsewhere) {
    const MappingKey key{kSub1, 6, 8080};
    nat_.dynamic[key] = Endpoint{kPaired, 33333};
    Request r = map_request(kSub1, 6, 8080, 600, 8080);
    r.options.prefer_failure = true;
    EXPECT_EQ(send(r).result, ResultCode::cannot_provide_external);
    EXPECT_EQ(nat_.reserved.count(key), 0u) << "released";
    EXPECT_EQ(server_.mappings_of(kSub1), 0u);
    r.map->external_port = 33333;
    EXPECT_EQ(send(r).result, ResultCode::success) << "the suggestion that is the mapping";
}

// §12.3: the lifetime answered is no longer than the NAT keeps the flow.
TEST_F(PcpServer, PeerLifetimeIsNoLongerThanTheNatKeepsTheFlow) {
    nat_.peer_lifetime = 300;
    const Request r = peer_request(3600);
    EXPECT_EQ(send(r).lifetime, 300u);
}

// While stored mappings are being taken back (the NAT answers later), their subscriber's
// requests wait: a refresh sees the restored mapping, not an empty table.
TEST_F(PcpServer, RequestsWaitForTheRestorationOfTheirSubscriber) {
    const uint64_t unix_now = 1'800'000'000'000ull;
    PcpMapping kept;
    kept.external = Endpoint{kPaired, 15000};
    kept.nonce = nonce_1_to_12();
    kept.client = IpAddress::from_ipv4(kSub1);
    kept.expires_ms = unix_now + 300'000;
    nat_.defer = true;
    EXPECT_TRUE(server_.restore(10, {{MappingKey{kSub1, 6, 80}, kept}}, unix_now).empty());
    EXPECT_TRUE(server_.handle(Received{kSub1, kClientPort,
                                        encoded_request(map_request(kSub1, 6, 80, 600)), 7})
                    .pending);
    EXPECT_EQ(nat_.asked.size(), 1u);
    EXPECT_TRUE(nat_.asked[0].exact);
    EXPECT_EQ(nat_.asked[0].suggested, kept.external);
    nat_.answer_later();
    const auto done = server_.poll_nat();
    ASSERT_EQ(done.size(), 2u);
    EXPECT_TRUE(done[0].restored);
    EXPECT_EQ(done[1].tag, 7u);
    EXPECT_EQ(done[1].changes.at(0).kind, Change::Kind::refreshed);
    EXPECT_EQ(decode_response(done[1].reply)->map->external_port, 15000);
}

// §8.5, §14: after a restart the epoch continues and the stored mappings are back, with the
// rest of their lifetime, at their external endpoints; expired ones are not.
TEST_F(PcpServer, RestoredStateContinuesTheEpochAndTheMappings) {
    const uint64_t unix_now = 1'800'000'000'000ull;
    PcpMapping alive;
    alive.external = Endpoint{kPaired, 15000};
    alive.nonce = nonce_1_to_12();
    alive.client = IpAddress::from_ipv4(kSub1);
    alive.expires_ms = unix_now + 300'000;
    alive.description = "kept";
    PcpMapping dead = alive;
    dead.external.port = 15001;
    dead.expires_ms = unix_now - 1;
    const MappingKey k1{kSub1, 6, 80}, k2{kSub1, 6, 81};
    const auto dropped = server_.restore(4000, {{k1, alive}, {k2, dead}}, unix_now);
    const auto restored = server_.poll_nat();
    ASSERT_EQ(restored.size(), 1u);
    EXPECT_TRUE(restored[0].restored);
    ASSERT_EQ(dropped.size(), 1u);
    EXPECT_EQ(dropped[0].key, k2);
    EXPECT_EQ(server_.epoch(), 4000u);
    clock_.advance_ms(10'000);
    EXPECT_EQ(server_.epoch(), 4010u) << "and counts on";
    EXPECT_EQ(nat_.reserved.at(k1), alive.external) << "reserved again, exactly";
    EXPECT_EQ(server_.wall_expiry(server_.mappings().at(k1), unix_now + 10'000), unix_now + 300'000);
    // The client refreshes with its nonce and keeps its endpoint.
    const Response r = send(map_request(kSub1, 6, 80, 600));
    EXPECT_EQ(r.result, ResultCode::success);
    EXPECT_EQ(r.map->external_port, 15000);
    EXPECT_EQ(r.epoch, 4010u);
    clock_.advance_ms(600'000);
    EXPECT_EQ(server_.expire().size(), 1u);
}

// ---- NAT-PMP (RFC 6886) on the same port ----------------------------------------------------

Bytes natpmp_send(Server& server, Ipv4Address from, const Bytes& request) {
    return serve_now(server, Received{from, kClientPort, request}).reply;
}

// §3.2: the external address request, answered with the subscriber's paired address.
TEST_F(PcpServer, NatPmpAddressRequestGetsThePairedAddress) {
    clock_.advance_ms(7000);
    EXPECT_EQ(to_hex(natpmp_send(server_, kSub1, hex("00 00"))),
              to_hex(hex("00 80 0000 00000007 c6336401")));
    nat_.fail_with = ResultCode::network_failure;
    EXPECT_EQ(to_hex(natpmp_send(server_, kSub1, hex("00 00"))),
              to_hex(hex("00 80 0003 00000007 00000000")));
}

// §3.3: map TCP 8080 suggesting 8080 for an hour; the answer names the mapping, which PCP
// sees too (one set of mappings, one quota, one epoch).
TEST_F(PcpServer, NatPmpMapRequestsShareThePcpMappings) {
    EXPECT_EQ(to_hex(natpmp_send(server_, kSub1, hex("00 02 0000 1f90 1f90 00000e10"))),
              to_hex(hex("00 82 0000 00000000 1f90 1f90 00000e10")));
    ASSERT_EQ(server_.mappings_of(kSub1), 1u);
    EXPECT_TRUE(server_.mappings().at(MappingKey{kSub1, 6, 8080}).natpmp);
    // UDP 5000 without suggestion; then over the quota of 3 (out of resources, §3.5).
    EXPECT_EQ(to_hex(natpmp_send(server_, kSub1, hex("00 01 0000 1388 0000 00000e10"))),
              to_hex(hex("00 81 0000 00000000 1388 4e20 00000e10")));
    send(map_request(kSub1, 17, 6000, 600));  // a PCP mapping: the third
    EXPECT_EQ(to_hex(natpmp_send(server_, kSub1, hex("00 01 0000 1771 0000 00000e10"))),
              to_hex(hex("00 81 0004 00000000 1771 0000 00000000")));
    // §3.4: lifetime 0 deletes; internal port 0 and lifetime 0 delete all of the protocol
    // (those NAT-PMP made: the PCP mapping has its own nonce... here the same all-zero one).
    EXPECT_EQ(to_hex(natpmp_send(server_, kSub1, hex("00 02 0000 1f90 0000 00000000"))),
              to_hex(hex("00 82 0000 00000000 1f90 0000 00000000")));
    EXPECT_EQ(server_.mappings().count(MappingKey{kSub1, 6, 8080}), 0u);
}

// §3.5: an unknown opcode comes back with the top bit and result 5; a response is ignored.
TEST_F(PcpServer, NatPmpUnknownOpcodesAndResponses) {
    EXPECT_EQ(to_hex(natpmp_send(server_, kSub1, hex("00 05 0000 12345678"))),
              to_hex(hex("00 85 0005 12345678")));
    const Outcome o = serve_now(server_, Received{kSub1, kClientPort, hex("00 80 0000 00000000")});
    EXPECT_TRUE(o.reply.empty());
    EXPECT_EQ(o.dropped, "a response (opcode 128 or more)");
    EXPECT_TRUE(natpmp_send(server_, ip("192.0.2.10"), hex("00 00")).empty())
        << "not from outside the subscribers either";
}

}  // namespace
}  // namespace cgn::ctl::pcp::test
