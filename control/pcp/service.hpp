#pragma once
// One step of the PCP service in the control loop: a batch of requests served, the changes
// they made written to the store in one commit (group commit), and only then their answers
// released (RFC 6887 §11.3's answer describes a mapping that exists; cgn's answer describes
// one that also survives a restart). At start it restores the stored mappings and continues
// the epoch (§8.5). No transport here: the caller receives and sends.

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "control/pcp/server.hpp"
#include "control/pcp/store.hpp"

namespace cgn::ctl::pcp {

struct Answer {
    common::Ipv4Address to;
    uint16_t port = 0;
    std::vector<uint8_t> bytes;
    uint64_t tag = 0;  // the tag of the request it answers (Received::tag); 0: unsolicited
};

// What the service did, for counters and logs.
struct ServiceTally {
    uint64_t requests = 0;
    uint64_t answered = 0;
    uint64_t dropped = 0;         // no answer, whatever the reason; by reason:
    uint64_t dropped_not_subscriber = 0;    // source outside the subscribers served
    uint64_t dropped_over_rate = 0;         // the server's own rate check (the worker's first)
    uint64_t dropped_too_many_waiting = 0;  // behind a request to the NAT, queue full
    uint64_t dropped_not_a_request = 0;     // too short, a response, not PCP or NAT-PMP
    uint64_t store_failures = 0;  // batches the store could not commit
    uint64_t restored = 0;        // mappings back at start
    uint64_t expired = 0;
    uint64_t removed_by_operator = 0;  // mappings the operator removed (their clients told)
};

// What an operator's removal did (Service::remove_by_operator).
struct OperatorRemoval {
    std::vector<std::pair<MappingKey, PcpMapping>> removed;  // as they were
    bool stored = true;  // false: the store could not commit (Service::last_store_error())
};

class Service {
public:
    // `store` may be null (nothing durable). `wall` gives Unix time in ms (stored expiries and
    // the epoch's start are wall-clock; the server's own clock need not be).
    Service(Server& server, MappingStore* store, const common::Clock& wall);

    // Serves `batch` in order and takes the NAT's answers that have come in; returns the
    // answers ready to send: of this batch's requests that needed no NAT answer, and of
    // earlier requests whose NAT answer came. The rest come from a later call (call it with
    // an empty batch while waiting() is not 0). When the store cannot commit, the answers of
    // requests that changed something become NO_RESOURCES (a short lifetime error: the
    // client retries, and its refresh is stored with the next batch).
    std::vector<Answer> serve(std::span<const Received> batch);
    // Requests waiting for the NAT.
    size_t waiting() const { return server_.waiting(); }
    // The tags of the requests the last serve() ended without an answer (dropped): the
    // transport forgets where they came from.
    const std::vector<uint64_t>& dropped_tags() const { return dropped_tags_; }
    // Removes the mappings whose lifetime ended (and from the store).
    void expire();

    // §14.2: after a restart, a mapping the NAT could not take back is gone; its client is
    // told with an unsolicited MAP response of lifetime 0, to its address and port 5350. The
    // caller sends these once, and they are gone from here.
    std::vector<Answer> take_unsolicited() { return std::exchange(unsolicited_, {}); }

    // The operator removes PCP mappings (the control socket's "pcp del", or an operator's
    // mapping that takes an endpoint's place): each is given back to the NAT, its removal is
    // committed to the store now (so that the operator's "ok" means it stays gone after a
    // restart), and its client is told as after a restart (RFC 6887 §14.2, take_unsolicited).
    OperatorRemoval remove_by_operator(const Server::OperatorSelection& which);
    // The operator discards the PCP state (Server::reset): the removals and the new epoch's
    // start committed, and every client that held a mapping told once, unsolicited, that the
    // server lost its state: a PCP client with an ANNOUNCE response of epoch 0 (RFC 6887
    // §14.1.3), a NAT-PMP client with an external address response of epoch 0 (RFC 6886
    // §3.6: a client that sees the epoch go back renews its mappings). `clients` says how many.
    struct Reset {
        OperatorRemoval removal;
        size_t clients = 0;
    };
    Reset reset();

    const ServiceTally& tally() const { return tally_; }
    const std::string& last_store_error() const { return store_error_; }

private:
    bool record(const std::vector<Change>& changes);
    // Stores and releases what `done` holds; the answers to send.
    std::vector<Answer> conclude(std::vector<Outcome> done);
    void count_drop(DropReason why);
    void tell_gone(const MappingKey& key, const PcpMapping& m);
    bool commit();

    Server& server_;
    MappingStore* store_;
    const common::Clock& wall_;
    ServiceTally tally_;
    std::vector<Answer> unsolicited_;
    std::vector<uint64_t> dropped_tags_;
    std::string store_error_;
};

}  // namespace cgn::ctl::pcp
