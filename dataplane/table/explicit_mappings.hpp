#pragma once
// Explicit mappings (static port mappings now, PCP later): an internal endpoint bound to an
// operator-chosen external endpoint, found by either side.
//
// Sharing rule: the control thread is the only writer (insert/erase); workers only look up,
// lock-free, at any time (rte_hash with RW_CONCURRENCY_LF). A key slot erased by the control
// thread is reused only after every worker has reported a quiescent state (rte_hash QSBR
// defer queue on the workers' QSBR variable), and the control thread synchronises on that
// variable before it acts on an erase (releasing the port, dropping sessions). Values are
// stored inline in the table, so a reader never follows a pointer that could be freed.

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "dataplane/table/hash_table.hpp"

struct rte_rcu_qsbr;

namespace cgn::dp {

struct Endpoint {
    uint32_t addr = 0;
    uint16_t port = 0;
    friend bool operator==(const Endpoint&, const Endpoint&) = default;
};

// A one-to-one mapping (Basic NAT for one subscriber address, RFC 3022 §2.1) is one entry
// under protocol kAnyProtocol, port 0, on each side: a lookup that finds no entry for its
// port falls back to it and keeps the port.
class ExplicitMappingTable {
public:
    static constexpr uint8_t kAnyProtocol = 0;

    ExplicitMappingTable(const std::string& name, uint32_t capacity, int socket_id,
                         rte_rcu_qsbr* readers);

    // Workers (any thread):
    std::optional<Endpoint> external_of(uint8_t protocol, Endpoint internal) const;
    std::optional<Endpoint> internal_of(uint8_t protocol, Endpoint external) const;

    // Control thread only. insert() fails when either endpoint is already mapped or the table
    // is full. kAnyProtocol with ports 0: a one-to-one mapping of the two addresses.
    bool insert(uint8_t protocol, Endpoint internal, Endpoint external);
    // Returns the external endpoint that was mapped.
    std::optional<Endpoint> erase(uint8_t protocol, Endpoint internal);
    uint32_t size() const { return table_.size() / 2; }

private:
    std::optional<Endpoint> find(uint8_t protocol, Endpoint e, bool inside) const;

    HashTable table_;
    // One-to-one mappings present: only then does a miss cost a second lookup. Written by the
    // control thread after the entries exist (before they go); a reader that sees it late
    // misses a mapping no older than its read, as with any newly added one.
    std::atomic<uint32_t> one_to_one_{0};
};

}  // namespace cgn::dp
