#pragma once
// Durable explicit mappings (RFC 6887 §14: state that survives a restart, so that the epoch
// continues, §8.5) in LMDB, the embedded database of Debian's liblmdb.
//
// Why LMDB: the mappings are looked up and changed by key only (no queries), and LMDB is an
// ACID key-value store whose copy-on-write B+tree is consistent after a crash at any point
// with nothing to replay at start (SQLite in WAL mode would be the other choice: a checkpoint
// and a SQL layer this does not need). A commit costs one fsync; changes are queued and
// committed together (group commit), so the control loop pays one fsync per batch of
// requests, not per request.
//
// One writer: the control thread. The records are written in a small versioned binary form
// (record_version); keys are big-endian (subscriber, protocol, port), so a cursor visits one
// subscriber's mappings together.
//
// Three named databases in one environment: "mappings" (PCP's, record versions 1 and 2),
// "meta" (the epoch) and "statics" (the operator's static mappings added live through the
// control socket, their own record version 1). "statics" came later: a store written before it has the other
// two only, and opens unchanged (the table is created empty); an older cgnd opening a newer
// store reads the two it knows and leaves "statics" alone.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "control/pcp/server.hpp"

namespace cgn::ctl::pcp {

struct StoredMapping {
    MappingKey key;
    PcpMapping mapping;  // its expires_ms is wall-clock time (Unix ms) in the store
};

class StoreError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class MappingStore {
public:
    // Opens (creating) the database in directory `dir`; `max_bytes` bounds its size (LMDB
    // maps it whole; it grows on disk as it fills). Throws StoreError naming the path.
    // The default, 16 GiB, is address space, not disk: the file grows with what is stored
    // (10M mappings take about 1.3 GB, docs/performance.md).
    explicit MappingStore(const std::string& dir, uint64_t max_bytes = uint64_t{1} << 34);
    ~MappingStore();
    MappingStore(const MappingStore&) = delete;
    MappingStore& operator=(const MappingStore&) = delete;

    // Queued until commit().
    void put(const MappingKey& key, const PcpMapping& mapping);
    void erase(const MappingKey& key);
    size_t queued() const { return queue_.size(); }
    // Writes everything queued in one transaction; when it returns, it is on disk. Throws
    // StoreError (nothing of the batch is written then).
    void commit();

    // Everything stored, in key order.
    std::vector<StoredMapping> load() const;
    // The wall-clock time (Unix ms) the server's epoch began (§8.5), kept across restarts.
    std::optional<uint64_t> epoch_start() const;
    void set_epoch_start(uint64_t unix_ms);  // queued like a change

    // Version 1: a mapping of its own; version 2 adds the port set (RFC 7753) a mapping is
    // one port of, and is written for those only, so that a store without port sets stays
    // readable by a cgnd that knows version 1 alone. Both are read.
    static constexpr uint8_t kRecordVersion = 1;
    static constexpr uint8_t kPortSetRecordVersion = 2;

    // The operator's static mappings added live ("static add" on the control socket), so that
    // a restart has them again. Those of the configuration are not here: the configuration is
    // their record. Unlike the PCP changes above these are not queued: each call is a
    // transaction of its own, on disk when it returns (the control socket's "ok" says the
    // mapping is durable); it throws StoreError, and nothing is written then.
    void store_static(const common::StaticMapping& mapping);
    void forget_static(const common::StaticMapping& mapping);  // by its internal side
    // Every stored static mapping, in key order (internal address, protocol, port).
    std::vector<common::StaticMapping> load_statics() const;

    static constexpr uint8_t kStaticRecordVersion = 1;

private:
    enum class Table : uint8_t { mappings, meta, statics };
    struct Op {
        bool erase = false;
        Table table = Table::mappings;
        std::string key, value;
    };
    void write_now(const Op& op);
    struct Env;
    std::unique_ptr<Env> env_;
    std::vector<Op> queue_;
};

}  // namespace cgn::ctl::pcp
