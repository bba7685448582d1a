#include "control/pcp/server.hpp"

#include <algorithm>
#include <set>

#include "control/pcp/natpmp.hpp"

namespace cgn::ctl::pcp {

namespace {

constexpr uint8_t kTcp = 6;
constexpr uint8_t kUdp = 17;

bool in_any(const std::vector<common::Ipv4Prefix>& prefixes, common::Ipv4Address a) {
    return std::any_of(prefixes.begin(), prefixes.end(),
                       [&](const common::Ipv4Prefix& p) { return p.contains(a); });
}

// The filters a NAT44 can apply: every remote peer is IPv4 (IPv4-mapped, §5), so a filter
// of an IPv6 prefix would admit nobody; it is refused as malformed for this mapping.
bool ipv4_filters(const std::vector<Filter>& filters) {
    return std::all_of(filters.begin(), filters.end(),
                       [](const Filter& f) { return f.remote_address.is_ipv4(); });
}

// §13.3: in order, a filter of prefix length 0 removes all before it; the others are added
// (an equal one only once).
std::vector<Filter> apply_filters(std::vector<Filter> current, const std::vector<Filter>& asked) {
    for (const Filter& f : asked) {
        if (f.prefix_length == 0) {
            current.clear();
        } else if (std::find(current.begin(), current.end(), f) == current.end()) {
            current.push_back(f);
        }
    }
    return current;
}

// RFC 7753: the key of port `i` of the set that starts at `first`.
MappingKey port_set_member(const MappingKey& first, uint32_t i) {
    return MappingKey{first.internal, first.protocol,
                      static_cast<uint16_t>(first.internal_port + i)};
}

// The key that names the port set `m` is one port of (its first internal port); `key` itself
// for a mapping of its own.
MappingKey port_set_first(const MappingKey& key, const PcpMapping& m) {
    if (m.port_set.size == 0) return key;
    return MappingKey{key.internal, key.protocol, m.port_set.first_internal_port};
}

// The PORT_SET option of a MAP answer about the mapping `first` (the first of its set):
// present when the request had one or the mapping is a set (RFC 7753 §4: the size mapped and
// the first internal port; the MAP's external port is the set's first). A set of one for a
// mapping made without PORT_SET. This server sets the P bit when parity was asked for and
// kept, so that a client sees whether it got it.
std::optional<PortSet> answered_port_set(const Request& q, const MappingKey& first,
                                         const PcpMapping& m) {
    if (!q.options.port_set && m.port_set.size == 0) return std::nullopt;
    PortSet s;
    s.size = std::max<uint16_t>(m.port_set.size, 1);
    s.first_internal_port = first.internal_port;
    s.parity = q.options.port_set && q.options.port_set->parity &&
               ((m.external.port ^ first.internal_port) & 1) == 0;
    return s;
}

}  // namespace

// A NAT-PMP map request (RFC 6886 §3.3) served as the MAP it stands for: what its answer,
// in NAT-PMP's terms, needs.
struct Server::NatPmpAsk {
    natpmp::Opcode opcode = natpmp::Opcode::map_udp;
    uint32_t lifetime = 0;
    uint16_t internal_port = 0;
    MappingKey key;
    bool existed = false;  // a mapping of the key existed before
};

// One request on its way through: the decoded request, its bytes (an error answer copies
// them, §7.3) and who it is about.
struct Server::Context {
    const Received& received;
    Request request;
    common::Ipv4Address internal;  // the subscriber the request is for (THIRD_PARTY or source)
    std::vector<Change> changes;
    const NatPmpAsk* natpmp = nullptr;  // the NAT-PMP request this MAP stands for
};

namespace {
enum Step : uint8_t { kCreateMap, kRefreshMap, kPeer, kNatPmpAddress, kRestore };
}

// A request waiting for the NAT's answer, with all it needs to be finished then: its bytes
// (owned), the decoded request, what was asked.
struct Server::Waiting {
    uint8_t step = kCreateMap;
    Received received;  // its payload points into `payload`
    std::vector<uint8_t> payload;
    Request request;
    common::Ipv4Address internal;
    std::vector<Filter> filters;  // kCreateMap, kRefreshMap: the mapping's
    std::optional<NatPmpAsk> natpmp;
    NatRequest asked;
    PcpMapping restoring;  // kRestore: the stored mapping, its expiry on this clock
};

Server::Server(ServerSettings settings, NatControl& nat, const common::Clock& clock)
    : settings_(std::move(settings)), nat_(nat), clock_(clock), start_ms_(clock.now_ms()) {}

Server::~Server() = default;

uint32_t Server::epoch() const {
    return epoch_base_ + static_cast<uint32_t>((clock_.now_ms() - start_ms_) / 1000);
}

uint64_t Server::wall_expiry(const PcpMapping& m, uint64_t unix_now_ms) const {
    const uint64_t now = clock_.now_ms();
    return unix_now_ms + (m.expires_ms > now ? m.expires_ms - now : 0);
}

std::vector<Change> Server::restore(uint32_t epoch_seconds,
                                    const std::vector<std::pair<MappingKey, PcpMapping>>& stored,
                                    uint64_t unix_now_ms) {
    epoch_base_ = epoch_seconds;
    start_ms_ = clock_.now_ms();
    std::vector<Change> dropped;
    // RFC 7753: a stored port set is asked for as one, with its first mapping; its other
    // ports come back with it or go with it. One without its first mapping (expired, or not
    // stored) is forgotten.
    std::set<MappingKey> sets_asked;
    for (const auto& [key, kept] : stored)
        if (kept.port_set.size != 0 && key.internal_port == kept.port_set.first_internal_port &&
            kept.expires_ms > unix_now_ms)
            sets_asked.insert(key);
    for (const auto& [key, kept] : stored) {
        if (!(port_set_first(key, kept) == key)) {
            if (sets_asked.count(port_set_first(key, kept)) == 0)
                dropped.push_back({Change::Kind::removed, key, kept.external});
            continue;
        }
        if (kept.expires_ms <= unix_now_ms) {
            dropped.push_back({Change::Kind::removed, key, kept.external});
            continue;
        }
        // §14: the mapping is asked for again at exactly its endpoint; the subscriber's
        // requests wait behind it.
        auto w = std::make_unique<Waiting>();
        w->step = kRestore;
        w->internal = key.internal;
        w->restoring = kept;
        w->restoring.expires_ms = start_ms_ + (kept.expires_ms - unix_now_ms);
        w->asked.id = next_request_++;
        w->asked.kind = NatRequest::Kind::map;
        w->asked.key = key;
        w->asked.suggested = kept.external;
        w->asked.exact = true;
        w->asked.filters = kept.filters;  // in force again with the mapping
        w->asked.port_set_size = kept.port_set.size;
        const NatRequest q = w->asked;
        ++queues_[key.internal.value].in_flight;
        waiting_.emplace(q.id, std::move(w));
        nat_.submit(q);
    }
    return dropped;
}

Outcome Server::finish_restore(Waiting& w, const Grant& g) {
    Outcome out;
    const MappingKey& key = w.asked.key;
    const uint16_t set_size = w.restoring.port_set.size;
    // A port set comes back whole or not at all: its client knows it as one mapping.
    const bool whole = set_size == 0 || g.port_set_size == set_size;
    if (g.result == ResultCode::success && g.external == w.restoring.external && whole) {
        const uint32_t ports = std::max<uint32_t>(set_size, 1);
        for (uint32_t i = 0; i < ports; ++i) {
            PcpMapping& m = mappings_[port_set_member(key, i)];
            m = w.restoring;
            m.external.port = static_cast<uint16_t>(w.restoring.external.port + i);
        }
        expiry_.emplace(w.restoring.expires_ms, key);
        per_subscriber_[key.internal.value] += ports;
        out.restored = true;
        return out;
    }
    if (g.result == ResultCode::success) {
        if (set_size == 0)
            nat_.release(key, g.external);
        else
            nat_.release_port_set(key, g.external, g.port_set_size);
    }
    for (uint32_t i = 0; i < std::max<uint32_t>(set_size, 1); ++i)
        out.changes.push_back({Change::Kind::removed, port_set_member(key, i),
                               Endpoint{w.restoring.external.address,
                                        static_cast<uint16_t>(w.restoring.external.port + i)}});
    // Its client is told once, about the set's first mapping (§14.2).
    out.gone.emplace_back(key, std::move(w.restoring));
    return out;
}

uint32_t Server::mappings_of(common::Ipv4Address subscriber) const {
    const auto it = per_subscriber_.find(subscriber.value);
    return it == per_subscriber_.end() ? 0 : it->second;
}

bool Server::is_subscriber(common::Ipv4Address a) const { return in_any(settings_.subscribers, a); }

// A token bucket per subscriber, in thousandths of a request so that slow rates refill.
bool Server::within_rate(common::Ipv4Address subscriber) {
    const uint64_t now = clock_.now_ms();
    const uint64_t burst = uint64_t{settings_.request_burst} * 1000;
    auto [it, fresh] = buckets_.try_emplace(subscriber.value, Bucket{burst, now});
    Bucket& b = it->second;
    if (!fresh) {
        b.tokens_milli = std::min(
            burst, b.tokens_milli + (now - b.refilled_ms) * settings_.requests_per_second);
        b.refilled_ms = now;
    }
    if (b.tokens_milli < 1000) return false;
    b.tokens_milli -= 1000;
    return true;
}

uint32_t Server::granted_lifetime(uint32_t requested) const {
    return std::clamp(requested, settings_.min_lifetime, settings_.max_lifetime);
}

Outcome Server::answer(Context& c, ResultCode code) {
    Outcome out;
    out.result = code;
    out.reply.resize(kMaxMessage);
    out.reply.resize(
        encode_error(c.received.payload, code, error_lifetime(code), epoch(), out.reply));
    return out;
}

namespace {
Outcome& addressed(Outcome& out, const Received& r) {
    out.tag = r.tag;
    out.to = r.source;
    out.to_port = r.source_port;
    return out;
}
}  // namespace

Outcome Server::handle(const Received& received) {
    Outcome out;
    addressed(out, received);
    // §18: answer subscribers only (a spoofed source would make this an amplifier), and at
    // most their rate: both before any work.
    if (!is_subscriber(received.source)) {
        out.dropped = "source is not a subscriber address";
        out.drop_reason = DropReason::not_subscriber;
        return out;
    }
    if (!within_rate(received.source)) {
        out.dropped = "subscriber over its request rate";
        out.drop_reason = DropReason::over_rate;
        return out;
    }
    return serve_admitted(received);
}

namespace {

// The answer to send instead of `out.reply` when what the request changed cannot be stored:
// NO_RESOURCES (a short lifetime error: the client retries).
void set_unstored(Outcome& out, std::span<const uint8_t> request, const uint32_t epoch,
                  const natpmp::Opcode* natpmp_opcode, uint16_t natpmp_port) {
    if (out.changes.empty() || out.reply.empty()) return;
    out.unstored.resize(kMaxMessage);
    if (natpmp_opcode != nullptr) {
        out.unstored.resize(natpmp::encode_map_response(
            *natpmp_opcode, natpmp::ResultCode::out_of_resources, epoch, natpmp_port, 0, 0,
            out.unstored));
        return;
    }
    out.unstored.resize(encode_error(request, ResultCode::no_resources,
                                     error_lifetime(ResultCode::no_resources), epoch,
                                     out.unstored));
}

}  // namespace

Outcome Server::serve_admitted(const Received& received) {
    Outcome out = serve_request(received);
    return addressed(out, received);
}

Outcome Server::wait_behind(const Received& received, common::Ipv4Address subscriber) {
    Outcome out;
    addressed(out, received);
    Queue& q = queues_[subscriber.value];
    if (q.behind.size() >= kMaxBehind) {
        out.dropped = "too many requests of the subscriber waiting for the NAT";
        out.drop_reason = DropReason::too_many_waiting;
        return out;
    }
    std::vector<uint8_t> bytes(received.payload.begin(), received.payload.end());
    q.behind.emplace_back(received, std::move(bytes));
    ++held_;
    out.pending = true;
    return out;
}

Outcome Server::ask(Context& c, NatRequest request, uint8_t step, std::vector<Filter> filters) {
    auto w = std::make_unique<Waiting>();
    w->step = step;
    w->payload.assign(c.received.payload.begin(), c.received.payload.end());
    w->received = c.received;
    w->received.payload = w->payload;
    w->request = c.request;
    w->internal = c.internal;
    w->filters = std::move(filters);
    if (c.natpmp != nullptr) w->natpmp = *c.natpmp;
    request.id = next_request_++;
    w->asked = request;
    ++queues_[c.internal.value].in_flight;
    waiting_.emplace(request.id, std::move(w));
    nat_.submit(request);
    Outcome out;
    addressed(out, c.received);
    out.pending = true;
    return out;
}

std::vector<Outcome> Server::answered(const NatAnswer& a) {
    std::vector<Outcome> outs;
    const auto it = waiting_.find(a.id);
    if (it == waiting_.end()) return outs;
    std::unique_ptr<Waiting> w = std::move(it->second);
    waiting_.erase(it);
    Outcome out = finish(*w, a.grant);
    addressed(out, w->received);
    outs.push_back(std::move(out));
    // The subscriber's requests behind it, in order, until one waits for the NAT again.
    const auto q = queues_.find(w->internal.value);
    if (q == queues_.end()) return outs;
    Queue& queue = q->second;  // stays valid while other subscribers' queues come and go
    --queue.in_flight;
    while (queue.in_flight == 0 && !queue.behind.empty()) {
        auto [received, bytes] = std::move(queue.behind.front());
        queue.behind.pop_front();
        --held_;
        received.payload = bytes;
        Outcome next = serve_admitted(received);
        if (!next.pending) outs.push_back(std::move(next));
    }
    if (queue.in_flight == 0 && queue.behind.empty()) queues_.erase(w->internal.value);
    return outs;
}

std::vector<Outcome> Server::poll_nat() {
    std::vector<Outcome> outs;
    for (;;) {
        const auto answers = nat_.take_answers();
        if (answers.empty()) return outs;
        for (const NatAnswer& a : answers)
            for (Outcome& o : answered(a)) outs.push_back(std::move(o));
    }
}

Outcome Server::finish(Waiting& w, const Grant& g) {
    if (w.step == kRestore) return finish_restore(w, g);
    Context c{w.received, w.request, w.internal, {}, w.natpmp ? &*w.natpmp : nullptr};
    Outcome out;
    switch (w.step) {
        case kCreateMap:
            out = finish_map(w, c, g);
            if (w.natpmp) return finish_natpmp(*w.natpmp, std::move(out));
            break;
        case kRefreshMap:
            out = finish_refresh(w, c, g);
            break;
        case kPeer:
            out = finish_peer(c, g);
            break;
        case kNatPmpAddress: {
            const bool ok = g.result == ResultCode::success;
            const auto code = ok ? natpmp::ResultCode::success : natpmp::ResultCode::network_failure;
            out.reply.resize(kMaxMessage);
            out.reply.resize(natpmp::encode_address_response(
                code, epoch(), ok ? g.external.address.value : 0, out.reply));
            break;
        }
    }
    set_unstored(out, w.received.payload, epoch(), nullptr, 0);
    return out;
}

Outcome Server::serve_request(const Received& received) {
    Outcome out;
    // Version 0 is NAT-PMP (RFC 6887 §9, RFC 6886 §1.1).
    if (!received.payload.empty() && received.payload[0] == natpmp::kVersion)
        return serve_natpmp(received);
    const Decoded d = decode_request(received.payload);
    Context c{received, d.request, received.source, {}};
    if (d.kind == Decoded::Kind::drop) {
        out.dropped = d.reason;
        out.drop_reason = DropReason::not_a_request;
        return out;
    }
    if (d.kind == Decoded::Kind::error) return answer(c, d.error);
    // §8.3: the client's address field must be the packet's source (no NAT between them).
    if (c.request.client_address != IpAddress::from_ipv4(received.source))
        return answer(c, ResultCode::address_mismatch);
    if (c.request.options.third_party) {
        // §13.1: only the operator's systems may ask for another host, and only for a
        // subscriber.
        const auto other = c.request.options.third_party->ipv4();
        if (!in_any(settings_.third_party_sources, received.source) || !other ||
            !is_subscriber(*other))
            return answer(c, ResultCode::not_authorized);
        c.internal = *other;
    }
    // One subscriber's requests are served in order: behind one waiting for the NAT, wait.
    if (c.request.opcode != Opcode::announce && busy(c.internal))
        return wait_behind(received, c.internal);
    Outcome served;
    switch (c.request.opcode) {
        case Opcode::map:
            served = serve_map(c);
            break;
        case Opcode::peer:
            served = serve_peer(c);
            break;
        case Opcode::announce:
            return serve_announce();
        default:
            return answer(c, ResultCode::unsupp_opcode);
    }
    set_unstored(served, received.payload, epoch(), nullptr, 0);
    return served;
}

// §14.1: ANNOUNCE is answered with the epoch; nothing changes.
Outcome Server::serve_announce() {
    Response r;
    r.opcode = Opcode::announce;
    r.epoch = epoch();
    Outcome out;
    out.reply.resize(kMaxMessage);
    out.reply.resize(encode_response(r, out.reply));
    return out;
}

namespace {

// §13.2 (PREFER_FAILURE): the NAT's grant is not the suggested endpoint (a suggested address
// of 0 asks for a port only).
bool misses_suggestion(const NatRequest& asked, const Grant& g) {
    if (!asked.exact) return false;
    const Endpoint& s = *asked.suggested;
    return g.external.port != s.port || (s.address.value != 0 && !(g.external.address == s.address));
}

Outcome map_reply(const Request& q, const MapData& asked, const Endpoint& external,
                  uint32_t lifetime, uint32_t epoch, const std::vector<Filter>& filters,
                  std::vector<Change> changes, std::optional<PortSet> port_set = std::nullopt) {
    Response r;
    r.opcode = Opcode::map;
    r.lifetime = lifetime;
    r.epoch = epoch;
    r.map = asked;
    r.map->external_port = external.port;
    r.map->external_address = IpAddress::from_ipv4(external.address);
    // §7.3: the options processed are in the answer.
    r.options.third_party = q.options.third_party;
    r.options.prefer_failure = q.options.prefer_failure;
    r.options.filters = filters;
    r.options.description = q.options.description;
    r.options.port_set = port_set;
    Outcome out;
    out.changes = std::move(changes);
    out.reply.resize(kMaxMessage);
    out.reply.resize(encode_response(r, out.reply));
    return out;
}

}  // namespace

Outcome Server::serve_map(Context& c) {
    const MapData& m = *c.request.map;
    const bool deleting = c.request.lifetime == 0;
    // §11.1: protocol 0 is "all protocols" (its port is ignored), port 0 "all ports": a CGN
    // shares its external addresses, so neither can be mapped; both can be deleted.
    if (m.protocol == 0 && deleting) return delete_map(c, MappingKey{c.internal, 0, 0});
    if (m.protocol != kTcp && m.protocol != kUdp) return answer(c, ResultCode::unsupp_protocol);
    const MappingKey key{c.internal, m.protocol, m.internal_port};
    if (deleting) return delete_map(c, key);
    if (m.internal_port == 0) return answer(c, ResultCode::not_authorized);
    if (nat_.static_mapping(key)) return answer(c, ResultCode::not_authorized);
    if (auto it = mappings_.find(key); it != mappings_.end()) return refresh_map(c, key, it->second);
    return create_map(c, key);
}

// §15: lifetime 0 deletes; the nonce must be the mapping's (§11.3); deleting what does not
// exist succeeds. Protocol 0 or port 0 delete every mapping of the internal address (and
// protocol) that has this nonce.
Outcome Server::delete_map(Context& c, const MappingKey& key) {
    const MapData& m = *c.request.map;
    const bool all = key.protocol == 0 || key.internal_port == 0;
    if (!all && nat_.static_mapping(key)) return answer(c, ResultCode::not_authorized);
    std::vector<MappingKey> doomed;
    for (auto it = mappings_.lower_bound(MappingKey{key.internal, 0, 0});
         it != mappings_.end() && it->first.internal == key.internal; ++it) {
        const bool match = all ? (key.protocol == 0 || it->first.protocol == key.protocol)
                               : it->first == key;
        if (!match) continue;
        if (it->second.nonce != m.nonce) {
            if (!all) return answer(c, ResultCode::not_authorized);
            continue;
        }
        doomed.push_back(it->first);
    }
    Endpoint external;
    std::optional<PortSet> port_set;
    if (!all && !doomed.empty()) {
        const PcpMapping& mapping = mappings_.at(doomed.front());
        // A port set is deleted as a whole, named by its first internal port (this server's
        // rule: another of its ports is not a mapping of its own).
        if (!(port_set_first(key, mapping) == key)) return answer(c, ResultCode::not_authorized);
        external = mapping.external;
        port_set = answered_port_set(c.request, key, mapping);
    }
    // remove() takes a port set whole: its other ports among `doomed` are gone by then.
    for (const MappingKey& k : doomed) remove(k, c.changes);
    return map_reply(c.request, m, external, 0, epoch(), {}, std::move(c.changes), port_set);
}

Outcome Server::refresh_map(Context& c, const MappingKey& key, PcpMapping& mapping) {
    const MapData& m = *c.request.map;
    if (mapping.nonce != m.nonce) return answer(c, ResultCode::not_authorized);
    // A port set is refreshed as a whole, named by its first internal port (as deleted).
    if (!(port_set_first(key, mapping) == key)) return answer(c, ResultCode::not_authorized);
    auto filters = apply_filters(mapping.filters, c.request.options.filters);
    if (filters.size() > kMaxFilters) return answer(c, ResultCode::excessive_remote_peers);
    if (!ipv4_filters(filters)) return answer(c, ResultCode::malformed_option);
    if (filters != mapping.filters) {
        // The workers filter (§13.3): the answer waits until the owner has the new list, so
        // that what the answer says is what the NAT does when it arrives.
        NatRequest q;
        q.kind = NatRequest::Kind::map;
        q.key = key;
        q.suggested = mapping.external;
        q.filters = filters;
        q.port_set_size = mapping.port_set.size;  // every port of a set takes the new list
        return ask(c, q, kRefreshMap, std::move(filters));
    }
    return renew_map(c, key, mapping, std::move(filters));
}

Outcome Server::finish_refresh(Waiting& w, Context& c, const Grant& g) {
    if (g.result != ResultCode::success) return answer(c, g.result);
    const auto it = mappings_.find(w.asked.key);
    // Expired meanwhile (and released after this request, in the owner's order): gone.
    // NO_RESOURCES is a short error; the client's next request creates it again.
    if (it == mappings_.end()) return answer(c, ResultCode::no_resources);
    return renew_map(c, w.asked.key, it->second, std::move(w.filters));
}

Outcome Server::renew_map(Context& c, const MappingKey& key, PcpMapping& mapping,
                          std::vector<Filter> filters) {
    const MapData& m = *c.request.map;
    const uint32_t lifetime = granted_lifetime(c.request.lifetime);
    mapping.filters = std::move(filters);
    if (c.request.options.description) mapping.description = *c.request.options.description;
    mapping.expires_ms = clock_.now_ms() + uint64_t{lifetime} * 1000;
    expiry_.emplace(mapping.expires_ms, key);
    c.changes.push_back({Change::Kind::refreshed, key, mapping.external});
    // RFC 7753: the other ports of a set share its lifetime, filters and description (the
    // set's expiry is its first mapping's).
    for (uint32_t i = 1; i < mapping.port_set.size; ++i) {
        const auto it = mappings_.find(port_set_member(key, i));
        if (it == mappings_.end()) continue;
        it->second.filters = mapping.filters;
        it->second.description = mapping.description;
        it->second.expires_ms = mapping.expires_ms;
        c.changes.push_back({Change::Kind::refreshed, it->first, it->second.external});
    }
    return map_reply(c.request, m, mapping.external, lifetime, epoch(), mapping.filters,
                     std::move(c.changes), answered_port_set(c.request, key, mapping));
}

Outcome Server::create_map(Context& c, const MappingKey& key) {
    const MapData& m = *c.request.map;
    const Options& o = c.request.options;
    auto filters = apply_filters({}, o.filters);
    if (filters.size() > kMaxFilters) return answer(c, ResultCode::excessive_remote_peers);
    if (!ipv4_filters(filters)) return answer(c, ResultCode::malformed_option);
    if (mappings_of(key.internal) >= settings_.max_mappings_per_subscriber)
        return answer(c, ResultCode::user_ex_quota);
    // §11.3: the internal endpoint's existing mapping is the answer (the NAT knows it);
    // otherwise the suggestion, if policy allows it; PREFER_FAILURE (§13.2) wants that or
    // nothing.
    NatRequest q;
    q.kind = NatRequest::Kind::map;
    q.key = key;
    if (m.external_port != 0) {
        const bool allowed = m.external_port >= settings_.suggestable_ports.first &&
                             m.external_port <= settings_.suggestable_ports.last;
        if (!allowed && o.prefer_failure) return answer(c, ResultCode::cannot_provide_external);
        if (allowed)
            q.suggested = Endpoint{m.external_address.ipv4().value_or(common::Ipv4Address{}),
                                   m.external_port};
    }
    q.exact = o.prefer_failure && q.suggested.has_value();
    if (o.port_set) return create_port_set(c, key, std::move(q), std::move(filters));
    q.filters = filters;
    return ask(c, q, kCreateMap, std::move(filters));
}

Outcome Server::create_port_set(Context& c, const MappingKey& key, NatRequest q,
                                std::vector<Filter> filters) {
    const PortSet& asked = *c.request.options.port_set;
    // The set starts at the MAP's internal port (RFC 7753 §4 has the client put the same port
    // in both, as this server reads it) and cannot run past port 65535.
    if (asked.first_internal_port != key.internal_port ||
        uint32_t{key.internal_port} + asked.size - 1 > 0xffff)
        return answer(c, ResultCode::malformed_option);
    // Each port of a set is one of the subscriber's mappings (max_mappings_per_subscriber):
    // with less room left than the set asks, a smaller set is granted (RFC 7753 lets the
    // server map fewer ports than asked); with none, create_map said USER_EX_QUOTA.
    uint32_t size = std::min<uint32_t>(
        asked.size, settings_.max_mappings_per_subscriber - mappings_of(key.internal));
    // Ports already mapped are not the set's to take: PCP's next mapping of the subscriber
    // and protocol, or an operator's (§15), ends the set before it.
    if (const auto next = mappings_.upper_bound(key); next != mappings_.end() &&
                                                      next->first.internal == key.internal &&
                                                      next->first.protocol == key.protocol)
        size = std::min<uint32_t>(size, next->first.internal_port - key.internal_port);
    for (uint32_t i = 1; i < size; ++i)
        if (nat_.static_mapping(port_set_member(key, i))) size = i;
    q.port_set_size = static_cast<uint16_t>(size);
    q.port_set_parity = asked.parity;
    q.filters = filters;
    return ask(c, q, kCreateMap, std::move(filters));
}

Outcome Server::finish_port_set(Waiting& w, Context& c, const Grant& g) {
    const MapData& m = *c.request.map;
    const Options& o = c.request.options;
    const MappingKey& first = w.asked.key;
    // A NAT that knows no port sets grants the one endpoint (its Grant says 1).
    const auto size =
        static_cast<uint16_t>(std::clamp<uint32_t>(g.port_set_size, 1, w.asked.port_set_size));
    // The operator mapped one of the ports while the NAT was being asked (§15): the set goes
    // back whole.
    for (uint32_t i = 0; i < size; ++i)
        if (nat_.static_mapping(port_set_member(first, i))) {
            nat_.release_port_set(first, g.external, size);
            return answer(c, ResultCode::not_authorized);
        }
    if (misses_suggestion(w.asked, g)) {  // the set starts at the suggested port or is not made
        nat_.release_port_set(first, g.external, size);
        return answer(c, ResultCode::cannot_provide_external);
    }
    const uint32_t lifetime = granted_lifetime(c.request.lifetime);
    PcpMapping made;
    made.external = g.external;
    made.nonce = m.nonce;
    made.client = c.request.client_address;
    made.expires_ms = clock_.now_ms() + uint64_t{lifetime} * 1000;
    made.filters = std::move(w.filters);
    made.description = o.description.value_or("");
    made.port_set = MappedPortSet{first.internal_port, size};
    for (uint32_t i = 0; i < size; ++i) {
        const MappingKey k = port_set_member(first, i);
        PcpMapping& mapping = mappings_[k];
        mapping = made;
        mapping.external.port = static_cast<uint16_t>(g.external.port + i);
        c.changes.push_back({Change::Kind::created, k, mapping.external});
    }
    expiry_.emplace(made.expires_ms, first);  // the set expires as one, with its first
    per_subscriber_[first.internal.value] += size;
    return map_reply(c.request, m, g.external, lifetime, epoch(), made.filters,
                     std::move(c.changes), answered_port_set(c.request, first, made));
}

Outcome Server::finish_map(Waiting& w, Context& c, const Grant& g) {
    const MapData& m = *c.request.map;
    const Options& o = c.request.options;
    const MappingKey& key = w.asked.key;
    if (g.result != ResultCode::success) return answer(c, g.result);
    if (w.asked.port_set_size != 0) return finish_port_set(w, c, g);
    // The operator mapped the endpoint while the NAT was being asked (§15: PCP may not take an
    // operator's mapping): the grant goes back.
    if (nat_.static_mapping(key)) {
        nat_.release(key, g.external);
        return answer(c, ResultCode::not_authorized);
    }
    if (misses_suggestion(w.asked, g)) {  // an existing mapping elsewhere is not it either
        nat_.release(key, g.external);
        return answer(c, ResultCode::cannot_provide_external);
    }
    const uint32_t lifetime = granted_lifetime(c.request.lifetime);
    PcpMapping& mapping = mappings_[key];
    mapping.external = g.external;
    mapping.nonce = m.nonce;
    mapping.client = c.request.client_address;
    mapping.expires_ms = clock_.now_ms() + uint64_t{lifetime} * 1000;
    mapping.filters = std::move(w.filters);
    mapping.description = o.description.value_or("");
    expiry_.emplace(mapping.expires_ms, key);
    ++per_subscriber_[key.internal.value];
    c.changes.push_back({Change::Kind::created, key, g.external});
    return map_reply(c.request, m, g.external, lifetime, epoch(), mapping.filters,
                     std::move(c.changes));
}

// §12.3: PEER maps (or finds) the outbound flow's mapping and may extend its lifetime; it
// creates no explicit mapping.
Outcome Server::serve_peer(Context& c) {
    const PeerData& p = *c.request.peer;
    if (p.protocol != kTcp && p.protocol != kUdp) return answer(c, ResultCode::unsupp_protocol);
    const auto remote = p.remote_address.ipv4();
    if (p.internal_port == 0 || p.remote_port == 0 || !remote)
        return answer(c, ResultCode::malformed_request);
    NatRequest q;
    q.kind = NatRequest::Kind::peer;
    q.key = MappingKey{c.internal, p.protocol, p.internal_port};
    if (p.external_port != 0)
        q.suggested =
            Endpoint{p.external_address.ipv4().value_or(common::Ipv4Address{}), p.external_port};
    q.remote = Endpoint{*remote, p.remote_port};
    q.lifetime = c.request.lifetime == 0 ? 0 : granted_lifetime(c.request.lifetime);
    return ask(c, q, kPeer);
}

Outcome Server::finish_peer(Context& c, const Grant& g) {
    if (g.result != ResultCode::success) return answer(c, g.result);
    const PeerData& p = *c.request.peer;
    uint32_t lifetime = c.request.lifetime == 0 ? 0 : granted_lifetime(c.request.lifetime);
    // The answer tells the lifetime the flow has (§12.3): no longer than the NAT keeps it.
    if (g.lifetime != 0) lifetime = std::min(lifetime, g.lifetime);
    Response r;
    r.opcode = Opcode::peer;
    r.lifetime = lifetime;
    r.epoch = epoch();
    r.peer = p;
    r.peer->external_port = g.external.port;
    r.peer->external_address = IpAddress::from_ipv4(g.external.address);
    r.options.third_party = c.request.options.third_party;
    r.options.description = c.request.options.description;
    Outcome out;
    out.reply.resize(kMaxMessage);
    out.reply.resize(encode_response(r, out.reply));
    return out;
}

namespace {

// RFC 6886 §3.5's codes for the PCP results a MAP can end with.
natpmp::ResultCode natpmp_result(ResultCode r) {
    switch (r) {
        case ResultCode::success:
            return natpmp::ResultCode::success;
        case ResultCode::network_failure:
            return natpmp::ResultCode::network_failure;
        case ResultCode::no_resources:
        case ResultCode::user_ex_quota:
        case ResultCode::cannot_provide_external:
            return natpmp::ResultCode::out_of_resources;
        default:
            return natpmp::ResultCode::not_authorized;
    }
}

}  // namespace

// RFC 6886: the address request is answered with the subscriber's paired address; a map
// request is served as the PCP MAP it stands for (the subscriber's own, nonce all zeros, the
// suggested port a suggestion), and its answer told in NAT-PMP's terms.
Outcome Server::serve_natpmp(const Received& received) {
    Outcome out;
    const natpmp::Decoded d = natpmp::decode_request(received.payload);
    if (d.kind == natpmp::Decoded::Kind::drop) {
        out.dropped = d.reason;
        out.drop_reason = DropReason::not_a_request;
        return out;
    }
    out.reply.resize(kMaxMessage);
    if (d.kind == natpmp::Decoded::Kind::error) {
        out.reply.resize(natpmp::encode_unsupported_opcode(received.payload, out.reply));
        return out;
    }
    const natpmp::Request& q = d.request;
    // One subscriber's requests in order (as for PCP).
    if (busy(received.source)) return wait_behind(received, received.source);
    if (q.opcode == natpmp::Opcode::external_address) {
        Context c{received, {}, received.source, {}};
        NatRequest ask_address;
        ask_address.kind = NatRequest::Kind::external_address;
        ask_address.key = MappingKey{received.source, 0, 0};
        return ask(c, ask_address, kNatPmpAddress);
    }
    Request r;
    r.opcode = Opcode::map;
    r.lifetime = q.lifetime;
    r.client_address = IpAddress::from_ipv4(received.source);
    MapData m;
    m.protocol = q.opcode == natpmp::Opcode::map_tcp ? kTcp : kUdp;
    m.internal_port = q.internal_port;
    m.external_port = q.suggested_port;
    m.external_address = IpAddress::ipv4_any();
    r.map = m;
    std::vector<uint8_t> as_pcp(kMaxMessage);
    as_pcp.resize(encode_request(r, as_pcp));
    const Received pcp{received.source, received.source_port, as_pcp, received.tag};
    NatPmpAsk asked;
    asked.opcode = q.opcode;
    asked.lifetime = q.lifetime;
    asked.internal_port = q.internal_port;
    asked.key = MappingKey{received.source, m.protocol, m.internal_port};
    asked.existed = mappings_.count(asked.key) != 0;
    Context c{pcp, r, received.source, {}, &asked};
    Outcome served = serve_map(c);
    if (served.pending) return served;
    return finish_natpmp(asked, std::move(served));
}

// The MAP's answer told in NAT-PMP's terms.
Outcome Server::finish_natpmp(const NatPmpAsk& q, Outcome served) {
    if (!q.existed && mappings_.count(q.key) != 0) mappings_.at(q.key).natpmp = true;
    const auto answer = decode_response(served.reply);
    const ResultCode result = answer ? answer->result : ResultCode::network_failure;
    // §3.4: a deletion is answered with external port 0 and lifetime 0.
    const bool ok = result == ResultCode::success && answer->map && q.lifetime != 0;
    served.reply.resize(kMaxMessage);
    served.reply.resize(natpmp::encode_map_response(
        q.opcode, natpmp_result(result), epoch(), q.internal_port,
        ok ? answer->map->external_port : 0, ok ? answer->lifetime : 0, served.reply));
    set_unstored(served, {}, epoch(), &q.opcode, q.internal_port);
    return served;
}

void Server::remove(const MappingKey& key, std::vector<Change>& changes) {
    const auto it = mappings_.find(key);
    if (it == mappings_.end()) return;
    if (const MappedPortSet set = it->second.port_set; set.size != 0) {
        // A port set goes as a whole, given back to the NAT at once.
        const MappingKey first = port_set_first(key, it->second);
        const Endpoint first_external{
            it->second.external.address,
            static_cast<uint16_t>(it->second.external.port -
                                  (key.internal_port - set.first_internal_port))};
        nat_.release_port_set(first, first_external, set.size);
        uint32_t removed = 0;
        for (uint32_t i = 0; i < set.size; ++i) {
            const auto member = mappings_.find(port_set_member(first, i));
            if (member == mappings_.end()) continue;
            changes.push_back({Change::Kind::removed, member->first, member->second.external});
            mappings_.erase(member);
            ++removed;
        }
        if ((per_subscriber_[key.internal.value] -= removed) == 0)
            per_subscriber_.erase(key.internal.value);
        return;
    }
    nat_.release(key, it->second.external);
    changes.push_back({Change::Kind::removed, key, it->second.external});
    if (--per_subscriber_[key.internal.value] == 0) per_subscriber_.erase(key.internal.value);
    mappings_.erase(it);
}

std::vector<Change> Server::expire() {
    std::vector<Change> changes;
    const uint64_t now = clock_.now_ms();
    while (!expiry_.empty() && expiry_.begin()->first <= now) {
        const auto [when, key] = *expiry_.begin();
        expiry_.erase(expiry_.begin());
        const auto it = mappings_.find(key);
        // A refreshed mapping left its older entry behind: only the current one counts.
        if (it != mappings_.end() && it->second.expires_ms == when) remove(key, changes);
    }
    return changes;
}

// ---- The operator's actions on PCP's mappings ----

bool Server::OperatorSelection::matches(const MappingKey& key, const PcpMapping& mapping) const {
    return (!internal || key.internal == *internal) && (!protocol || key.protocol == *protocol) &&
           (!internal_port || key.internal_port == *internal_port) &&
           (!external || mapping.external.address == *external) &&
           (!external_port || mapping.external.port == *external_port);
}

std::vector<std::pair<MappingKey, PcpMapping>> Server::selected(
    const OperatorSelection& which) const {
    std::vector<std::pair<MappingKey, PcpMapping>> out;
    // A subscriber's mappings are together in key order: start there when it is named.
    auto it = which.internal ? mappings_.lower_bound(MappingKey{*which.internal, 0, 0})
                             : mappings_.begin();
    for (; it != mappings_.end(); ++it) {
        if (which.internal && !(it->first.internal == *which.internal)) break;
        if (which.matches(it->first, it->second)) out.emplace_back(it->first, it->second);
    }
    return out;
}

std::vector<std::pair<MappingKey, PcpMapping>> Server::remove_by_operator(
    const OperatorSelection& which) {
    std::vector<std::pair<MappingKey, PcpMapping>> removed;
    // A port set goes as a whole: a set one port of which is selected goes with all its
    // ports.
    std::set<MappingKey> taken;
    for (auto& [key, mapping] : selected(which)) {
        if (mapping.port_set.size == 0) {
            removed.emplace_back(key, std::move(mapping));
            continue;
        }
        const MappingKey first = port_set_first(key, mapping);
        for (uint32_t i = 0; i < mapping.port_set.size; ++i) {
            const auto member = mappings_.find(port_set_member(first, i));
            if (member != mappings_.end() && taken.insert(member->first).second)
                removed.emplace_back(*member);
        }
    }
    // remove() gives each back to the NAT; its expiry entry is left to go stale (expire()
    // skips those). The caller makes its own removal changes from what is returned.
    std::vector<Change> unused;
    for (const auto& [key, mapping] : removed) remove(key, unused);
    return removed;
}

std::vector<std::pair<MappingKey, PcpMapping>> Server::reset() {
    auto removed = remove_by_operator({});
    expiry_.clear();
    epoch_base_ = 0;
    start_ms_ = clock_.now_ms();
    return removed;
}

}  // namespace cgn::ctl::pcp
