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

// §13.3 is enforced by the workers: the NAT is given the mapping's whole list with the create,
// and again (before the answer) whenever a refresh changes it. Without the filters in the
// NatRequest the first EXPECT fails; without the refresh's question, the second answer is
// not pending and the NAT never hears of the second filter.
TEST_F(PcpServer, FiltersReachTheNatBeforeTheAnswer) {
    Request r = map_request(kSub1, 17, 5000, 600);
    r.options.filters = {Filter{120, 0, v4("203.0.113.0")}};
    ASSERT_EQ(send(r).result, ResultCode::success);
    ASSERT_EQ(nat_.asked.size(), 1u);
    EXPECT_EQ(nat_.asked.back().filters, r.options.filters);

    // The same list again: a plain refresh, nothing to ask.
    ASSERT_EQ(send(r).result, ResultCode::success);
    EXPECT_EQ(nat_.asked.size(), 1u);

    // Another filter: asked of the NAT, and answered only once the NAT has it.
    nat_.defer = true;
    r.options.filters = {Filter{128, 7777, v4("192.0.2.20")}};
    const Outcome pending =
        server_.handle(Received{kSub1, kClientPort, encoded_request(r), 7});
    EXPECT_TRUE(pending.pending);
    ASSERT_EQ(nat_.asked.size(), 2u);
    const std::vector<Filter> both{Filter{120, 0, v4("203.0.113.0")},
                                   Filter{128, 7777, v4("192.0.2.20")}};
    EXPECT_EQ(nat_.asked.back().filters, both);
    EXPECT_EQ(nat_.asked.back().kind, NatRequest::Kind::map);
    EXPECT_TRUE(server_.poll_nat().empty());
    nat_.answer_later();
    const auto done = server_.poll_nat();
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(done[0].tag, 7u);
    const auto answer = decode_response(done[0].reply);
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->result, ResultCode::success);
    EXPECT_EQ(answer->options.filters, both);
    EXPECT_EQ(server_.mappings().at(MappingKey{kSub1, 17, 5000}).filters, both);
    ASSERT_EQ(done[0].changes.size(), 1u);
    EXPECT_EQ(done[0].changes[0].kind, Change::Kind::refreshed);
    nat_.defer = false;

    // Prefix length 0 removes them all: the NAT is told (an empty list: anyone, §11.3).
    r.options.filters = {Filter{0, 0, IpAddress::ipv4_any()}};
    EXPECT_TRUE(send(r).options.filters.empty());
    ASSERT_EQ(nat_.asked.size(), 3u);
    EXPECT_TRUE(nat_.asked.back().filters.empty());

    // A NAT44's peers are IPv4: an IPv6 prefix would admit nobody, and is refused.
    IpAddress v6{};
    v6.bytes = {0x20, 0x01, 0x0d, 0xb8};
    r.options.filters = {Filter{64, 0, v6}};
    EXPECT_EQ(send(r).result, ResultCode::malformed_option);
    Request fresh = map_request(kSub1, 17, 5001, 600);
    fresh.options.filters = {Filter{64, 0, v6}};
    EXPECT_EQ(send(fresh).result, ResultCode::malformed_option);
    EXPECT_EQ(nat_.asked.size(), 3u);
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

// Without the second look at the operator's mappings in finish_map, the create that was in
// flight when the operator mapped the endpoint ends as a PCP mapping beside the static one.
TEST_F(PcpServer, AStaticMappingMadeWhileTheNatIsAskedWins) {
    nat_.defer = true;
    const MappingKey key{kSub1, 17, 5061};
    ASSERT_TRUE(server_.handle(Received{kSub1, kClientPort,
                                        encoded_request(map_request(kSub1, 17, 5061, 600)), 1})
                    .pending);
    nat_.statics.insert(key);  // the operator's `static add`, meanwhile
    nat_.answer_later();
    const auto done = server_.poll_nat();
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(decode_response(done[0].reply)->result, ResultCode::not_authorized);
    EXPECT_TRUE(done[0].changes.empty());
    EXPECT_EQ(server_.mappings().count(key), 0u);
    EXPECT_EQ(nat_.reserved.count(key), 0u) << "the grant was given back";
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

// A mapping as the store gives it back at `unix_now`: kSub1's client, external port 15000 of
// the paired address, 300 s left.
PcpMapping stored_mapping(uint64_t unix_now) {
    PcpMapping m;
    m.external = Endpoint{kPaired, 15000};
    m.nonce = nonce_1_to_12();
    m.client = IpAddress::from_ipv4(kSub1);
    m.expires_ms = unix_now + 300'000;
    return m;
}

// While stored mappings are being taken back (the NAT answers later), their subscriber's
// requests wait: a refresh sees the restored mapping, not an empty table.
TEST_F(PcpServer, RequestsWaitForTheRestorationOfTheirSubscriber) {
    const uint64_t unix_now = 1'800'000'000'000ull;
    PcpMapping kept = stored_mapping(unix_now);
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
    alive.filters = {Filter{120, 0, v4("203.0.113.0")}};
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
    ASSERT_EQ(nat_.asked.size(), 1u);
    EXPECT_EQ(nat_.asked[0].filters, alive.filters) << "its FILTERs in force again (§13.3)";
    EXPECT_EQ(server_.wall_expiry(server_.mappings().at(k1), unix_now + 10'000), unix_now + 300'000);
    // The client refreshes with its nonce and keeps its endpoint.
    const Response r = send(map_request(kSub1, 6, 80, 600));
    EXPECT_EQ(r.result, ResultCode::success);
    EXPECT_EQ(r.map->external_port, 15000);
    EXPECT_EQ(r.epoch, 4010u);
    clock_.advance_ms(600'000);
    EXPECT_EQ(server_.expire().size(), 1u);
}

// ---- PORT_SET (RFC 7753) -----------------------------------------------------------------------
// The fixture's quota is 3 mappings per subscriber: the sets here are of 3 at most, or ask
// for more to meet it.

Request port_set_request(Ipv4Address from, uint8_t protocol, uint16_t first, uint16_t size,
                         uint32_t lifetime, bool parity = false) {
    Request r = map_request(from, protocol, first, lifetime);
    r.options.port_set = PortSet{size, first, parity};
    return r;
}

MappingKey key_of(Ipv4Address subscriber, uint8_t protocol, uint16_t port) {
    return MappingKey{subscriber, protocol, port};
}

// Without PORT_SET served, the answer has no PORT_SET (port_set is nullopt), one change and
// one mapping.
TEST_F(PcpServer, APortSetIsGrantedWholeAndEchoedInTheAnswer) {
    const Response r = send(port_set_request(kSub1, 17, 5000, 3, 600));
    EXPECT_EQ(r.result, ResultCode::success);
    ASSERT_TRUE(r.map);
    EXPECT_EQ(r.map->internal_port, 5000);
    EXPECT_EQ(r.map->external_port, 20000) << "the MAP's external port is the set's first";
    EXPECT_EQ(r.options.port_set, std::optional<PortSet>(PortSet{3, 5000, false}));
    ASSERT_EQ(nat_.asked.size(), 1u);
    EXPECT_EQ(nat_.asked[0].port_set_size, 3u) << "asked of the NAT as one";
    ASSERT_EQ(last_.changes.size(), 3u);
    for (uint16_t i = 0; i < 3; ++i) {
        EXPECT_EQ(last_.changes[i].kind, Change::Kind::created);
        EXPECT_EQ(last_.changes[i].key, key_of(kSub1, 17, 5000 + i));
        EXPECT_EQ(last_.changes[i].external, (Endpoint{kPaired, uint16_t(20000 + i)}));
        const PcpMapping& m = server_.mappings().at(key_of(kSub1, 17, 5000 + i));
        EXPECT_EQ(m.port_set, (MappedPortSet{5000, 3}));
        EXPECT_EQ(m.nonce, nonce_1_to_12());
    }
    EXPECT_EQ(server_.mappings_of(kSub1), 3u) << "each port counts against the quota";
    // The answer's bytes carry the option, as a client reads it.
    const auto decoded = decode_response(last_.reply);
    ASSERT_TRUE(decoded);
    EXPECT_EQ(decoded->options.port_set->size, 3u);
}

// Without the smaller grant, the second answer says 3 (or the NAT is asked for 3 and the
// mappings exceed the quota); without the quota per port, the third set is granted.
TEST_F(PcpServer, ASmallerSetIsGrantedAndEachPortCountsAgainstTheQuota) {
    nat_.port_set_limit = 2;  // the NAT has 2 consecutive ports to give
    Response r = send(port_set_request(kSub1, 6, 5000, 3, 600));
    EXPECT_EQ(r.result, ResultCode::success);
    EXPECT_EQ(r.options.port_set, std::optional<PortSet>(PortSet{2, 5000, false}));
    EXPECT_EQ(last_.changes.size(), 2u);
    EXPECT_EQ(server_.mappings_of(kSub1), 2u);
    // One mapping left of the quota: a set of 3 is asked of the NAT as 1.
    nat_.port_set_limit = 0xffff;
    r = send(port_set_request(kSub1, 6, 6000, 3, 600));
    EXPECT_EQ(r.result, ResultCode::success);
    EXPECT_EQ(nat_.asked.back().port_set_size, 1u);
    EXPECT_EQ(r.options.port_set->size, 1u);
    EXPECT_EQ(server_.mappings_of(kSub1), 3u);
    // None left: RFC 6887 §7.4 USER_EX_QUOTA, and nothing asked of the NAT.
    const size_t asked = nat_.asked.size();
    r = send(port_set_request(kSub1, 6, 7000, 2, 600));
    EXPECT_EQ(r.result, ResultCode::user_ex_quota);
    EXPECT_EQ(nat_.asked.size(), asked);
}

// Without the stop at ports already mapped, the NAT is asked for 2 (then 3) and the set
// takes the single mapping's port (then the operator's).
TEST_F(PcpServer, ASetEndsBeforeAnInternalPortAlreadyMapped) {
    ASSERT_EQ(send(map_request(kSub1, 17, 5001, 600)).result, ResultCode::success);
    Response r = send(port_set_request(kSub1, 17, 5000, 2, 600));
    EXPECT_EQ(r.result, ResultCode::success);
    EXPECT_EQ(nat_.asked.back().port_set_size, 1u);
    EXPECT_EQ(r.options.port_set->size, 1u);
    EXPECT_EQ(server_.mappings().at(key_of(kSub1, 17, 5001)).port_set.size, 0u)
        << "the single mapping stays its own";
    // An operator's mapping ends it too (§15).
    nat_.statics.insert(key_of(kSub2, 6, 6001));
    r = send(port_set_request(kSub2, 6, 6000, 3, 600));
    EXPECT_EQ(r.result, ResultCode::success);
    EXPECT_EQ(nat_.asked.back().port_set_size, 1u);
    EXPECT_EQ(r.options.port_set->size, 1u);
}

// Without the P bit passed on, the set starts at 20000 (even) for an odd first internal port
// and the answer's P bit is 0.
TEST_F(PcpServer, ParityAskedIsKeptAndSaidInTheAnswer) {
    const Response r = send(port_set_request(kSub1, 17, 5001, 2, 600, true));
    EXPECT_EQ(r.result, ResultCode::success);
    EXPECT_TRUE(nat_.asked.back().port_set_parity);
    EXPECT_EQ(r.map->external_port, 20001);
    EXPECT_EQ(r.options.port_set, std::optional<PortSet>(PortSet{2, 5001, true}));
    // Without it asked, any parity; the answer's P bit stays 0.
    const Response any = send(port_set_request(kSub2, 17, 5001, 1, 600, false), kSub2);
    EXPECT_EQ(any.map->external_port, 20000);
    EXPECT_FALSE(any.options.port_set->parity);
}

// The same for a set: the operator maps its middle port while the NAT is asked. Without the
// second look in finish_port_set, the set is made around the static mapping's port.
TEST_F(PcpServer, AStaticMappingMadeWhileASetIsAskedSendsTheSetBackWhole) {
    nat_.defer = true;
    ASSERT_TRUE(server_.handle(Received{kSub1, kClientPort,
                                        encoded_request(port_set_request(kSub1, 17, 5100, 3, 600)),
                                        1})
                    .pending);
    ASSERT_EQ(nat_.asked.back().port_set_size, 3u);
    nat_.statics.insert(MappingKey{kSub1, 17, 5101});  // the operator's `static add`, meanwhile
    nat_.answer_later();
    const auto done = server_.poll_nat();
    ASSERT_EQ(done.size(), 1u);
    EXPECT_EQ(decode_response(done[0].reply)->result, ResultCode::not_authorized);
    EXPECT_TRUE(done[0].changes.empty());
    EXPECT_EQ(server_.mappings_of(kSub1), 0u);
    for (uint16_t port = 5100; port < 5103; ++port)
        EXPECT_EQ(nat_.reserved.count(MappingKey{kSub1, 17, port}), 0u) << port;
    ASSERT_EQ(nat_.released_sets.size(), 1u) << "given back as one set";
    EXPECT_EQ(nat_.released_sets[0].second, 3u);
}

// Without the set treated as one: the refresh changes 1 mapping, the delete of 5001 succeeds
// and removes one port, the delete of the set leaves 2 mappings, expiry removes 1.
TEST_F(PcpServer, ASetIsRefreshedDeletedAndExpiredAsOne) {
    ASSERT_EQ(send(port_set_request(kSub1, 17, 5000, 3, 600)).result, ResultCode::success);
    clock_.advance_ms(100'000);
    Response r = send(port_set_request(kSub1, 17, 5000, 3, 900));
    EXPECT_EQ(r.result, ResultCode::success);
    EXPECT_EQ(r.map->external_port, 20000);
    EXPECT_EQ(r.options.port_set->size, 3u);
    ASSERT_EQ(last_.changes.size(), 3u);
    for (const Change& c : last_.changes) EXPECT_EQ(c.kind, Change::Kind::refreshed);
    for (uint16_t i = 0; i < 3; ++i)
        EXPECT_EQ(server_.mappings().at(key_of(kSub1, 17, 5000 + i)).expires_ms,
                  clock_.now_ms() + 900'000);
    // A refresh without the option still names the set by its first port.
    r = send(map_request(kSub1, 17, 5000, 900));
    EXPECT_EQ(r.result, ResultCode::success);
    EXPECT_EQ(r.options.port_set->size, 3u);
    // Another port of the set is not a mapping of its own: neither refreshed nor deleted.
    EXPECT_EQ(send(map_request(kSub1, 17, 5001, 900)).result, ResultCode::not_authorized);
    EXPECT_EQ(send(map_request(kSub1, 17, 5002, 0)).result, ResultCode::not_authorized);
    EXPECT_EQ(server_.mappings_of(kSub1), 3u);
    // New FILTERs reach the NAT for every port of the set.
    Request filtered = port_set_request(kSub1, 17, 5000, 3, 900);
    filtered.options.filters = {Filter{128, 0, v4("203.0.113.1")}};
    EXPECT_EQ(send(filtered).result, ResultCode::success);
    EXPECT_EQ(nat_.asked.back().port_set_size, 3u);
    EXPECT_EQ(server_.mappings().at(key_of(kSub1, 17, 5002)).filters, filtered.options.filters);

    // Deleted through its first port: all of it, given back to the NAT at once.
    r = send(port_set_request(kSub1, 17, 5000, 3, 0));
    EXPECT_EQ(r.result, ResultCode::success);
    EXPECT_EQ(r.lifetime, 0u);
    EXPECT_EQ(r.options.port_set->size, 3u);
    ASSERT_EQ(last_.changes.size(), 3u);
    for (const Change& c : last_.changes) EXPECT_EQ(c.kind, Change::Kind::removed);
    EXPECT_EQ(server_.mappings_of(kSub1), 0u);
    ASSERT_EQ(nat_.released_sets.size(), 1u);
    EXPECT_EQ(nat_.released_sets[0], std::make_pair(key_of(kSub1, 17, 5000), uint16_t{3}));
    EXPECT_TRUE(nat_.taken.empty());

    // Expired: all of it, at the set's end of life.
    ASSERT_EQ(send(port_set_request(kSub1, 17, 5000, 2, 600)).result, ResultCode::success);
    clock_.advance_ms(599'000);
    EXPECT_TRUE(server_.expire().empty());
    clock_.advance_ms(1'000);
    EXPECT_EQ(server_.expire().size(), 2u);
    EXPECT_EQ(server_.mappings_of(kSub1), 0u);
}

// Without the set restored as one, the NAT is asked twice (once per port, no port_set_size)
// and a member whose first port is not stored comes back alone.
TEST_F(PcpServer, AStoredSetIsRestoredWhole) {
    const uint64_t unix_now = 1'800'000'000'000ull;
    PcpMapping kept = stored_mapping(unix_now);
    kept.port_set = MappedPortSet{80, 2};
    PcpMapping second = kept;
    second.external.port = 15001;
    PcpMapping orphan = kept;  // its set's first port is not stored
    orphan.port_set = MappedPortSet{90, 2};
    orphan.external.port = 15011;
    const auto dropped = server_.restore(10,
                                         {{key_of(kSub1, 6, 80), kept},
                                          {key_of(kSub1, 6, 81), second},
                                          {key_of(kSub1, 6, 91), orphan}},
                                         unix_now);
    ASSERT_EQ(dropped.size(), 1u);
    EXPECT_EQ(dropped[0].key, key_of(kSub1, 6, 91));
    ASSERT_EQ(nat_.asked.size(), 1u);
    EXPECT_EQ(nat_.asked[0].port_set_size, 2u);
    EXPECT_TRUE(nat_.asked[0].exact);
    const auto done = server_.poll_nat();
    ASSERT_EQ(done.size(), 1u);
    EXPECT_TRUE(done[0].restored);
    EXPECT_EQ(server_.mappings_of(kSub1), 2u);
    EXPECT_EQ(server_.mappings().at(key_of(kSub1, 6, 81)).external, second.external);
    // The NAT cannot give it back whole: gone, every port, its client told once.
    server_.remove_by_operator({});
    nat_.port_set_limit = 1;
    server_.restore(10, {{key_of(kSub1, 6, 80), kept}, {key_of(kSub1, 6, 81), second}}, unix_now);
    const auto gone = server_.poll_nat();
    ASSERT_EQ(gone.size(), 1u);
    EXPECT_FALSE(gone[0].restored);
    EXPECT_EQ(gone[0].changes.size(), 2u);
    EXPECT_EQ(gone[0].gone.size(), 1u);
    EXPECT_EQ(server_.mappings_of(kSub1), 0u);
    EXPECT_TRUE(nat_.taken.empty()) << "what was granted went back";
}

// Without the set taken whole, the operator's selection of port 5001 leaves 5000 and 5002.
TEST_F(PcpServer, TheOperatorRemovesASetWhole) {
    ASSERT_EQ(send(port_set_request(kSub1, 17, 5000, 3, 600)).result, ResultCode::success);
    Server::OperatorSelection which;
    which.internal_port = 5001;
    EXPECT_EQ(server_.remove_by_operator(which).size(), 3u);
    EXPECT_EQ(server_.mappings_of(kSub1), 0u);
}

// RFC 7753 §4: the set starts at the MAP's internal port and cannot run past port 65535.
// Without the checks, both are granted.
TEST_F(PcpServer, AMalformedPortSetIsMalformedOption) {
    Request r = port_set_request(kSub1, 17, 5000, 2, 600);
    r.options.port_set->first_internal_port = 5001;
    EXPECT_EQ(send(r).result, ResultCode::malformed_option);
    EXPECT_EQ(send(port_set_request(kSub1, 17, 65535, 2, 600)).result,
              ResultCode::malformed_option);
    EXPECT_EQ(send(port_set_request(kSub1, 17, 65535, 1, 600)).result, ResultCode::success);
    EXPECT_TRUE(nat_.asked.size() == 1u);
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
