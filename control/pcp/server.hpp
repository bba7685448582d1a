#pragma once
// The PCP service (RFC 6887 §8.3, §11-§15): what a request means for the NAT, and the answer.
// NAT-PMP (RFC 6886) requests on the same port are served as the PCP MAP they stand for, so
// both share the mappings, quotas and epoch.
// It keeps the explicit mappings PCP created (their nonce, lifetime, filters, description) and
// asks the NAT for external endpoints through `NatControl`; cgnd implements that over the
// dataplane, the tests with a fake. Time and randomness are injected; nothing here blocks,
// sends or stores: `handle` returns the answer and the changes made, and the caller (the
// control loop) publishes the changes, makes them durable, and only then sends the answer
// (docs/architecture.md, "PCP").

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/address.hpp"
#include "common/clock.hpp"
#include "common/config.hpp"
#include "control/pcp/codec.hpp"

namespace cgn::ctl::pcp {

struct Endpoint {
    common::Ipv4Address address;
    uint16_t port = 0;
    friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// The internal side of a mapping: subscriber address, protocol, port.
struct MappingKey {
    common::Ipv4Address internal;
    uint8_t protocol = 0;
    uint16_t internal_port = 0;
    friend bool operator==(const MappingKey&, const MappingKey&) = default;
    friend auto operator<=>(const MappingKey&, const MappingKey&) = default;
};

// What the NAT answers when asked for an external endpoint.
struct Grant {
    ResultCode result = ResultCode::success;  // or NO_RESOURCES, CANNOT_PROVIDE_EXTERNAL, ...
    Endpoint external;
};

// The NAT as the PCP service sees it (one implementation over the dataplane's explicit-mapping
// table and port blocks, one fake in the tests).
class NatControl {
public:
    virtual ~NatControl() = default;
    // The external endpoint of the internal endpoint's dynamic mapping, if it has one now
    // (§11.3: a MAP for it returns that endpoint).
    virtual std::optional<Endpoint> dynamic_mapping(const MappingKey& key) = 0;
    // True when the internal endpoint is mapped by the operator (a static mapping): PCP may
    // neither take nor delete it (§15).
    virtual bool static_mapping(const MappingKey& key) = 0;
    // Reserves an external endpoint for a new explicit mapping: `suggested` when it is free
    // for this subscriber; otherwise, unless `exact`, another on the subscriber's paired
    // address.
    virtual Grant reserve(const MappingKey& key, std::optional<Endpoint> suggested,
                          bool exact) = 0;
    // Gives a reserved or published endpoint back.
    virtual void release(const MappingKey& key, const Endpoint& external) = 0;
    // PEER (§12.3): the outbound flow from `key` to `remote` mapped (created or found), its
    // idle timeout at least `lifetime` seconds; the external endpoint or why not.
    virtual Grant peer(const MappingKey& key, const Endpoint& remote,
                       std::optional<Endpoint> suggested, uint32_t lifetime) = 0;
    // The subscriber's external (paired) address, for NAT-PMP's address request (RFC 6886
    // §3.2); nothing when it has none and can get none now.
    virtual std::optional<common::Ipv4Address> external_address(common::Ipv4Address subscriber) = 0;
};

struct ServerSettings {
    // RFC 6887 §18 (and RFC 2827): only subscriber addresses on the inside may ask.
    std::vector<common::Ipv4Prefix> subscribers;
    // §13.1: sources allowed THIRD_PARTY (operator systems); anyone else: NOT_AUTHORIZED.
    std::vector<common::Ipv4Prefix> third_party_sources;
    // §15: granted lifetimes are clamped to [min, max]; the RFC's minimum is 120 s and its
    // default maximum 24 hours.
    uint32_t min_lifetime = 120;
    uint32_t max_lifetime = 86400;
    // Per-subscriber limits (RFC 6888 REQ-9 for PCP's share of the subscriber's ports).
    uint32_t max_mappings_per_subscriber = 64;
    uint32_t requests_per_second = 10;  // per subscriber; excess dropped before any work
    uint32_t request_burst = 20;
    // The external ports a client may suggest; other suggestions are treated as none.
    common::PortRange suggestable_ports{1024, 65535};
};

// What the service did, for the store and the dataplane (the caller publishes these).
struct Change {
    enum class Kind : uint8_t { created, refreshed, removed };
    Kind kind = Kind::created;
    MappingKey key;
    Endpoint external;
};

// An explicit mapping made by PCP.
struct PcpMapping {
    Endpoint external;
    Nonce nonce{};
    IpAddress client;      // who asked (the subscriber, or the THIRD_PARTY operator)
    uint64_t expires_ms = 0;
    std::vector<Filter> filters;  // §13.3: none means endpoint-independent filtering
    std::string description;      // RFC 7220
    bool natpmp = false;          // made by NAT-PMP (RFC 6886): its nonce is all zeros
};

struct Received {
    common::Ipv4Address source;  // the packet's source address and port
    uint16_t source_port = 0;
    std::span<const uint8_t> payload;
};

struct Outcome {
    std::vector<uint8_t> reply;   // empty: nothing to send (dropped)
    std::string_view dropped;     // why nothing is sent (counted by the caller)
    ResultCode result = ResultCode::success;  // of the reply
    std::vector<Change> changes;  // to publish (and store) before the reply is sent
};

class Server {
public:
    Server(ServerSettings settings, NatControl& nat, const common::Clock& clock);

    Outcome handle(const Received& request);
    // Removes the mappings whose lifetime has ended; returns what it removed.
    std::vector<Change> expire();

    // §8.5: seconds since this server's state began (continued from a restored state).
    uint32_t epoch() const;

    // After a restart (§8.5, §14): the epoch continues at `epoch_seconds` now, and the stored
    // mappings are reserved again at their external endpoints. A stored expiry is wall-clock
    // (Unix ms); `unix_now_ms` converts it. Mappings whose lifetime ended while the server was
    // down, or whose endpoint the NAT no longer grants, are left out and returned as removed
    // (for the store to forget).
    std::vector<Change> restore(uint32_t epoch_seconds,
                                const std::vector<std::pair<MappingKey, PcpMapping>>& stored,
                                uint64_t unix_now_ms);
    // A mapping's expiry as wall-clock time, for the store.
    uint64_t wall_expiry(const PcpMapping& m, uint64_t unix_now_ms) const;
    const std::map<MappingKey, PcpMapping>& mappings() const { return mappings_; }
    uint32_t mappings_of(common::Ipv4Address subscriber) const;

private:
    struct Bucket {
        uint64_t tokens_milli = 0;
        uint64_t refilled_ms = 0;
    };
    struct Context;  // one request on its way through (server.cpp)

    bool is_subscriber(common::Ipv4Address a) const;
    bool within_rate(common::Ipv4Address subscriber);
    uint32_t granted_lifetime(uint32_t requested) const;
    Outcome answer(Context& c, ResultCode code);
    Outcome serve_map(Context& c);
    Outcome delete_map(Context& c, const MappingKey& key);
    Outcome refresh_map(Context& c, const MappingKey& key, PcpMapping& m);
    Outcome create_map(Context& c, const MappingKey& key);
    Outcome serve_peer(Context& c);
    Outcome serve_announce();
    Outcome serve_natpmp(const Received& received);
    void remove(const MappingKey& key, std::vector<Change>& changes);

    ServerSettings settings_;
    NatControl& nat_;
    const common::Clock& clock_;
    uint64_t start_ms_;
    uint32_t epoch_base_ = 0;  // the epoch at start_ms_
    std::map<MappingKey, PcpMapping> mappings_;
    std::multimap<uint64_t, MappingKey> expiry_;  // expires_ms -> key (stale entries skipped)
    std::unordered_map<uint32_t, uint32_t> per_subscriber_;
    std::unordered_map<uint32_t, Bucket> buckets_;
};

}  // namespace cgn::ctl::pcp
