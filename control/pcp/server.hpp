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
#include <deque>
#include <map>
#include <memory>
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

// §13.3: a mapping keeps at most this many filters; more is EXCESSIVE_REMOTE_PEERS.
constexpr size_t kMaxFilters = 16;

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
    uint32_t lifetime = 0;  // PEER: the flow's idle timeout in the NAT (seconds); 0: not known
    // MAP with a port set (NatRequest::port_set_size): how many of the ports asked were
    // mapped, internal key.internal_port + i to external.port + i. A NAT that knows no port
    // sets leaves it at 1: the set is then the one endpoint.
    uint16_t port_set_size = 1;
};

// A question to the NAT. The NAT's state lives in the workers (a subscriber's pairing, its
// blocks, its dynamic mappings), so every question is answered later, by id (NatAnswer), and
// the control thread never waits for a worker.
struct NatRequest {
    enum class Kind : uint8_t {
        // §11.3 MAP: the internal endpoint's existing mapping, held as an explicit mapping
        // (whatever was suggested); otherwise `suggested` when it is free for this subscriber;
        // otherwise, unless `exact`, another endpoint on the subscriber's paired address.
        map,
        // §12.3 PEER: the outbound flow from `key` to `remote` created or found; its
        // external endpoint and idle timeout.
        peer,
        // RFC 6886 §3.2: the subscriber's paired address (in Grant::external.address).
        external_address,
    };
    uint64_t id = 0;
    Kind kind = Kind::map;
    MappingKey key;  // external_address: key.internal only
    std::optional<Endpoint> suggested;  // address 0: any of the subscriber's
    bool exact = false;
    Endpoint remote;       // peer
    uint32_t lifetime = 0;  // peer: what the client asked (clamped)
    // map: the mapping's FILTERs (§13.3), all of them (they replace the NAT's): only the
    // remote peers they admit may open sessions to it from outside; none, anyone (§11.3).
    // IPv4-mapped addresses only (the server refuses others).
    std::vector<Filter> filters;
    // map, RFC 7753: 0, the one endpoint above; n > 0, a port set: up to n consecutive
    // internal ports from key.internal_port mapped to as many consecutive external ports (all
    // in one of the subscriber's port blocks), the first external port `suggested` when it
    // can be (exactly it, when `exact`), fewer when n cannot be had (Grant::port_set_size).
    // An internal port already mapped ends the set before it, unless it is the first (§11.3:
    // its mapping starts the set) or is already mapped to its place in the set (a refresh).
    uint16_t port_set_size = 0;
    // RFC 7753 §4's P bit: the first external port should have the first internal port's
    // parity (a preference: a set of the other parity is better than none).
    bool port_set_parity = false;
};

struct NatAnswer {
    uint64_t id = 0;
    Grant grant;
};

// The NAT as the PCP service sees it (one implementation over the dataplane's workers, one
// fake in the tests).
class NatControl {
public:
    virtual ~NatControl() = default;
    // True when the internal endpoint is mapped by the operator (a static mapping): PCP may
    // neither take nor delete it (§15). Known to the control thread: answered at once.
    virtual bool static_mapping(const MappingKey& key) = 0;
    // Asks; the answer comes out of take_answers() (possibly at once).
    virtual void submit(const NatRequest& request) = 0;
    // Gives a mapping granted by `map` back: it becomes an ordinary dynamic mapping again
    // (released with its last session). No answer. Requests about one subscriber are carried
    // out in the order they were made.
    virtual void release(const MappingKey& key, const Endpoint& external) = 0;
    // release() for the `size` mappings of a port set granted by `map` (RFC 7753), first
    // internal port `first.internal_port`, first external port `first_external`. A NAT that
    // can give a set back at once overrides it (cgnd: one worker command, not `size`).
    virtual void release_port_set(const MappingKey& first, const Endpoint& first_external,
                                  uint16_t size) {
        for (uint32_t i = 0; i < size; ++i)
            release(
                MappingKey{first.internal, first.protocol,
                           static_cast<uint16_t>(first.internal_port + i)},
                Endpoint{first_external.address, static_cast<uint16_t>(first_external.port + i)});
    }
    // The answers that have come in since the last call.
    virtual std::vector<NatAnswer> take_answers() = 0;
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
    // Per-subscriber limits (RFC 6888 REQ-9 for PCP's share of the subscriber's ports). Each
    // port of a port set (RFC 7753) is one mapping here, as it is one of the subscriber's
    // ports in the worker: a set larger than the room left is granted smaller, none left is
    // USER_EX_QUOTA (RFC 6887 §7.4).
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

// RFC 7753: the port set a PCP mapping is one port of. A MAP with PORT_SET makes `size`
// mappings, internal ports first_internal_port + i to consecutive external ports, each
// carrying this: they share nonce, client, lifetime, filters and description, and are
// refreshed, deleted, expired, stored and restored as one, named by the first internal port
// (the key of the set's first mapping).
struct MappedPortSet {
    uint16_t first_internal_port = 0;
    uint16_t size = 0;  // 0: not made with PORT_SET (a mapping of its own)
    bool contains(uint16_t internal_port) const {
        return size != 0 && internal_port >= first_internal_port &&
               internal_port - first_internal_port < size;
    }
    friend bool operator==(const MappedPortSet&, const MappedPortSet&) = default;
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
    MappedPortSet port_set;       // RFC 7753
};

struct Received {
    common::Ipv4Address source;  // the packet's source address and port
    uint16_t source_port = 0;
    std::span<const uint8_t> payload;
    uint64_t tag = 0;  // the transport's, given back with the outcome
};

// Why a request got no answer (Outcome::drop_reason), each counted apart.
enum class DropReason : uint8_t {
    none,
    not_subscriber,    // the source is outside the subscribers served (§18)
    over_rate,         // the subscriber is over its request rate (§18)
    too_many_waiting,  // kMaxBehind of the subscriber's requests already wait for the NAT
    not_a_request,     // too short, a response, or not PCP/NAT-PMP (§8.3: no answer)
};

struct Outcome {
    uint64_t tag = 0;             // the request's (Received::tag)
    common::Ipv4Address to;       // the request's source address and port: where to answer
    uint16_t to_port = 0;
    bool pending = false;         // the answer comes later, from Server::answered()
    std::vector<uint8_t> reply;   // empty (and not pending): nothing to send (dropped)
    std::string_view dropped;     // why nothing is sent, in words (for logs)
    DropReason drop_reason = DropReason::none;  // the same, counted by the caller
    ResultCode result = ResultCode::success;  // of the reply
    std::vector<Change> changes;  // to store before the reply is sent
    std::vector<uint8_t> unstored;  // the reply instead when the changes cannot be stored
    // Restoration (Server::restore) finished for a stored mapping: taken back, or gone (its
    // client is to be told, §14.2).
    bool restored = false;
    std::vector<std::pair<MappingKey, PcpMapping>> gone;
};

class Server {
public:
    Server(ServerSettings settings, NatControl& nat, const common::Clock& clock);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // A request from the transport. Its outcome is final, or pending: then it comes from
    // answered() once the NAT has answered. Requests about one subscriber are served in
    // order: one that arrives while the subscriber waits for the NAT waits behind it.
    Outcome handle(const Received& request);
    // The NAT's answer: the outcome of the request that waited for it, and of those that
    // waited behind it and could now be served.
    std::vector<Outcome> answered(const NatAnswer& answer);
    // answered() for every answer the NAT has now (NatControl::take_answers), until none.
    std::vector<Outcome> poll_nat();
    // Requests waiting for the NAT (in flight or behind one).
    size_t waiting() const { return waiting_.size() + held_; }
    // Removes the mappings whose lifetime has ended; returns what it removed.
    std::vector<Change> expire();

    // §8.5: seconds since this server's state began (continued from a restored state).
    uint32_t epoch() const;

    // After a restart (§8.5, §14): the epoch continues at `epoch_seconds` now, and the stored
    // mappings are asked of the NAT again at their external endpoints. A stored expiry is
    // wall-clock (Unix ms); `unix_now_ms` converts it. Mappings whose lifetime ended while the
    // server was down are returned as removed at once (for the store to forget); each other
    // one comes out of answered() as restored, or as gone (its endpoint no longer granted).
    std::vector<Change> restore(uint32_t epoch_seconds,
                                const std::vector<std::pair<MappingKey, PcpMapping>>& stored,
                                uint64_t unix_now_ms);
    // A mapping's expiry as wall-clock time, for the store.
    uint64_t wall_expiry(const PcpMapping& m, uint64_t unix_now_ms) const;
    const std::map<MappingKey, PcpMapping>& mappings() const { return mappings_; }
    uint32_t mappings_of(common::Ipv4Address subscriber) const;

    // ---- The operator's actions on PCP's mappings ----
    // Apart from the request path above: here the mappings change without their client
    // asking, and RFC 6887 §14.2 has the server tell the client (the caller, Service, does).
    // Which mappings an operator's action concerns: every field given must match (none
    // given: every mapping).
    struct OperatorSelection {
        std::optional<common::Ipv4Address> internal;  // the subscriber
        std::optional<uint8_t> protocol;
        std::optional<uint16_t> internal_port;
        std::optional<common::Ipv4Address> external;
        std::optional<uint16_t> external_port;
        bool matches(const MappingKey& key, const PcpMapping& mapping) const;
    };
    // The mappings `which` selects, in key order (for a refusal that names them).
    std::vector<std::pair<MappingKey, PcpMapping>> selected(const OperatorSelection& which) const;
    // Removes the mappings `which` selects because the operator said so: each is given back
    // to the NAT (NatControl::release) and forgotten here. Returns them as they were, for the
    // caller to store their removal and tell their clients (§14.2).
    std::vector<std::pair<MappingKey, PcpMapping>> remove_by_operator(
        const OperatorSelection& which);
    // The operator discards the server's state: every mapping given back to the NAT and
    // forgotten, and the epoch starts again at 0 (§8.5: a server that loses its state resets
    // its epoch). Returns the mappings as they were, for the caller to store their removal
    // and tell their clients (§14.1.3).
    std::vector<std::pair<MappingKey, PcpMapping>> reset();

private:
    struct Bucket {
        uint64_t tokens_milli = 0;
        uint64_t refilled_ms = 0;
    };
    struct Context;  // one request on its way through (server.cpp)
    struct NatPmpAsk;  // a NAT-PMP map request served as a MAP (server.cpp)
    struct Waiting;    // a request waiting for the NAT's answer (server.cpp)
    struct Queue {     // one subscriber's requests waiting for the NAT
        uint32_t in_flight = 0;
        std::deque<std::pair<Received, std::vector<uint8_t>>> behind;  // payload owned
    };
    static constexpr size_t kMaxBehind = 32;

    Outcome serve_admitted(const Received& received);
    Outcome wait_behind(const Received& received, common::Ipv4Address subscriber);
    Outcome ask(Context& c, NatRequest request, uint8_t step, std::vector<Filter> filters = {});
    Outcome finish(Waiting& w, const Grant& g);
    Outcome serve_request(const Received& received);
    Outcome finish_map(Waiting& w, Context& c, const Grant& g);
    Outcome finish_peer(Context& c, const Grant& g);
    Outcome finish_natpmp(const NatPmpAsk& q, Outcome served);
    Outcome finish_restore(Waiting& w, const Grant& g);

    bool is_subscriber(common::Ipv4Address a) const;
    bool within_rate(common::Ipv4Address subscriber);
    uint32_t granted_lifetime(uint32_t requested) const;
    Outcome answer(Context& c, ResultCode code);
    Outcome serve_map(Context& c);
    Outcome delete_map(Context& c, const MappingKey& key);
    Outcome refresh_map(Context& c, const MappingKey& key, PcpMapping& m);
    Outcome renew_map(Context& c, const MappingKey& key, PcpMapping& m,
                      std::vector<Filter> filters);
    Outcome finish_refresh(Waiting& w, Context& c, const Grant& g);
    Outcome create_map(Context& c, const MappingKey& key);
    Outcome serve_peer(Context& c);
    Outcome serve_announce();
    Outcome serve_natpmp(const Received& received);
    // A request of the subscriber waits for the NAT (its later ones wait behind it).
    bool busy(common::Ipv4Address subscriber) const {
        const auto it = queues_.find(subscriber.value);
        return it != queues_.end() && it->second.in_flight != 0;
    }
    // Removes the mapping of `key`, or the whole port set it is one port of.
    void remove(const MappingKey& key, std::vector<Change>& changes);
    // RFC 7753: a PORT_SET request for `key`, whose internal port has no PCP mapping: the
    // set asked of the NAT, as long as the quota and the ports already mapped allow.
    Outcome create_port_set(Context& c, const MappingKey& key, NatRequest q,
                            std::vector<Filter> filters);
    // The port set the NAT granted: its mappings made.
    Outcome finish_port_set(Waiting& w, Context& c, const Grant& g);

    ServerSettings settings_;
    NatControl& nat_;
    const common::Clock& clock_;
    uint64_t start_ms_;
    uint32_t epoch_base_ = 0;  // the epoch at start_ms_
    std::map<MappingKey, PcpMapping> mappings_;
    std::multimap<uint64_t, MappingKey> expiry_;  // expires_ms -> key (stale entries skipped)
    std::unordered_map<uint32_t, uint32_t> per_subscriber_;
    std::unordered_map<uint32_t, Bucket> buckets_;
    uint64_t next_request_ = 1;
    std::unordered_map<uint64_t, std::unique_ptr<Waiting>> waiting_;  // NAT request id ->
    std::unordered_map<uint32_t, Queue> queues_;  // subscriber -> its waiting requests
    size_t held_ = 0;  // requests behind others, all queues
};

}  // namespace cgn::ctl::pcp
