#include "control/pcp/store.hpp"

#include <lmdb.h>
#include <sys/stat.h>

#include <cstring>

namespace cgn::ctl::pcp {

namespace {

constexpr const char* kMappingsDb = "mappings";
constexpr const char* kMetaDb = "meta";
constexpr const char* kStaticsDb = "statics";  // added after the first two (see store.hpp)
constexpr unsigned kTables = 3;
constexpr const char* kEpochKey = "epoch_start_unix_ms";

[[noreturn]] void fail(const std::string& what, int rc) {
    throw StoreError("mapping store: " + what + ": " + mdb_strerror(rc));
}

void put_be(std::string& out, uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t get_be(const uint8_t*& p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = v << 8 | *p++;
    return v;
}

std::string key_bytes(const MappingKey& k) {
    std::string out;
    put_be(out, k.internal.value, 4);
    put_be(out, k.protocol, 1);
    put_be(out, k.internal_port, 2);
    return out;
}

MappingKey key_of(const MDB_val& v) {
    const auto* p = static_cast<const uint8_t*>(v.mv_data);
    MappingKey k;
    k.internal.value = static_cast<uint32_t>(get_be(p, 4));
    k.protocol = static_cast<uint8_t>(get_be(p, 1));
    k.internal_port = static_cast<uint16_t>(get_be(p, 2));
    return k;
}

// Record version 1: external address and port, nonce, client address, expiry (Unix ms),
// NAT-PMP flag, the filters (count, then prefix length, port, address each), the description
// (length, bytes). Version 2, for a port of a port set (RFC 7753): the same, then the set's
// first internal port and size.
std::string value_bytes(const PcpMapping& m) {
    std::string out;
    const bool in_set = m.port_set.size != 0;
    put_be(out, in_set ? MappingStore::kPortSetRecordVersion : MappingStore::kRecordVersion, 1);
    put_be(out, m.external.address.value, 4);
    put_be(out, m.external.port, 2);
    out.append(reinterpret_cast<const char*>(m.nonce.data()), m.nonce.size());
    out.append(reinterpret_cast<const char*>(m.client.bytes.data()), m.client.bytes.size());
    put_be(out, m.expires_ms, 8);
    put_be(out, m.natpmp ? 1 : 0, 1);
    put_be(out, m.filters.size(), 1);
    for (const Filter& f : m.filters) {
        put_be(out, f.prefix_length, 1);
        put_be(out, f.remote_port, 2);
        out.append(reinterpret_cast<const char*>(f.remote_address.bytes.data()), 16);
    }
    put_be(out, m.description.size(), 2);
    out += m.description;
    if (in_set) {
        put_be(out, m.port_set.first_internal_port, 2);
        put_be(out, m.port_set.size, 2);
    }
    return out;
}

// Nothing when the record is not one this version reads (the caller says which key).
std::optional<PcpMapping> mapping_of(const MDB_val& v) {
    const auto* p = static_cast<const uint8_t*>(v.mv_data);
    const uint8_t* end = p + v.mv_size;
    auto have = [&](size_t n) { return static_cast<size_t>(end - p) >= n; };
    constexpr size_t kFixed = 1 + 4 + 2 + 12 + 16 + 8 + 1 + 1;
    if (!have(kFixed)) return std::nullopt;
    const uint8_t version = *p++;
    if (version != MappingStore::kRecordVersion && version != MappingStore::kPortSetRecordVersion)
        return std::nullopt;
    PcpMapping m;
    m.external.address.value = static_cast<uint32_t>(get_be(p, 4));
    m.external.port = static_cast<uint16_t>(get_be(p, 2));
    std::memcpy(m.nonce.data(), p, m.nonce.size());
    p += m.nonce.size();
    std::memcpy(m.client.bytes.data(), p, 16);
    p += 16;
    m.expires_ms = get_be(p, 8);
    m.natpmp = get_be(p, 1) != 0;
    const size_t filters = get_be(p, 1);
    for (size_t i = 0; i < filters; ++i) {
        if (!have(19)) return std::nullopt;
        Filter f;
        f.prefix_length = static_cast<uint8_t>(get_be(p, 1));
        f.remote_port = static_cast<uint16_t>(get_be(p, 2));
        std::memcpy(f.remote_address.bytes.data(), p, 16);
        p += 16;
        m.filters.push_back(f);
    }
    if (!have(2)) return std::nullopt;
    const size_t length = get_be(p, 2);
    if (!have(length)) return std::nullopt;
    m.description.assign(reinterpret_cast<const char*>(p), length);
    p += length;
    if (version == MappingStore::kPortSetRecordVersion) {
        if (!have(4)) return std::nullopt;
        m.port_set.first_internal_port = static_cast<uint16_t>(get_be(p, 2));
        m.port_set.size = static_cast<uint16_t>(get_be(p, 2));
        if (m.port_set.size == 0) return std::nullopt;
    }
    return m;
}

MDB_val val(const std::string& s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }

// A static mapping's key: its internal side, as a PCP mapping's (a one-to-one mapping has
// protocol 0 and port 0).
std::string static_key_bytes(const common::StaticMapping& m) {
    return key_bytes(MappingKey{m.internal_addr, m.protocol, m.internal_port});
}

// Static record version 1: external address and port.
std::string static_value_bytes(const common::StaticMapping& m) {
    std::string out;
    put_be(out, MappingStore::kStaticRecordVersion, 1);
    put_be(out, m.external_addr.value, 4);
    put_be(out, m.external_port, 2);
    return out;
}

// Nothing when the record is not one this version reads.
std::optional<common::StaticMapping> static_of(const MDB_val& k, const MDB_val& v) {
    if (k.mv_size != 7 || v.mv_size != 7) return std::nullopt;
    const auto* p = static_cast<const uint8_t*>(v.mv_data);
    if (*p++ != MappingStore::kStaticRecordVersion) return std::nullopt;
    const MappingKey key = key_of(k);
    common::StaticMapping m;
    m.protocol = key.protocol;
    m.internal_addr = key.internal;
    m.internal_port = key.internal_port;
    m.external_addr.value = static_cast<uint32_t>(get_be(p, 4));
    m.external_port = static_cast<uint16_t>(get_be(p, 2));
    const bool known = m.one_to_one() ? m.internal_port == 0 && m.external_port == 0
                                      : m.protocol == 6 || m.protocol == 17;
    if (!known) return std::nullopt;
    return m;
}

}  // namespace

struct MappingStore::Env {
    MDB_env* env = nullptr;
    MDB_dbi mappings = 0;
    MDB_dbi meta = 0;
    MDB_dbi statics = 0;
    std::string dir;
    MDB_dbi dbi(Table t) const {
        return t == Table::meta ? meta : t == Table::statics ? statics : mappings;
    }
    ~Env() {
        if (env != nullptr) mdb_env_close(env);
    }
};

MappingStore::MappingStore(const std::string& dir, uint64_t max_bytes) : env_(new Env) {
    env_->dir = dir;
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        throw StoreError("mapping store: cannot create directory " + dir + ": " +
                         std::strerror(errno));
    if (int rc = mdb_env_create(&env_->env); rc != 0) fail("cannot create an environment", rc);
    mdb_env_set_maxdbs(env_->env, kTables);
    if (int rc = mdb_env_set_mapsize(env_->env, max_bytes); rc != 0) fail("map size", rc);
    // Default flags: every commit is synced to disk (durable when commit() returns).
    if (int rc = mdb_env_open(env_->env, dir.c_str(), 0, 0600); rc != 0)
        fail("cannot open " + dir, rc);
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env_->env, nullptr, 0, &txn); rc != 0) fail("begin", rc);
    int rc = mdb_dbi_open(txn, kMappingsDb, MDB_CREATE, &env_->mappings);
    if (rc == 0) rc = mdb_dbi_open(txn, kMetaDb, MDB_CREATE, &env_->meta);
    // A store from before static mappings were kept gets the table here, empty.
    if (rc == 0) rc = mdb_dbi_open(txn, kStaticsDb, MDB_CREATE, &env_->statics);
    if (rc != 0) {
        mdb_txn_abort(txn);
        fail("cannot open the tables in " + dir, rc);
    }
    if (rc = mdb_txn_commit(txn); rc != 0) fail("commit", rc);
}

MappingStore::~MappingStore() = default;

void MappingStore::put(const MappingKey& key, const PcpMapping& mapping) {
    queue_.push_back(Op{false, Table::mappings, key_bytes(key), value_bytes(mapping)});
}

void MappingStore::erase(const MappingKey& key) {
    queue_.push_back(Op{true, Table::mappings, key_bytes(key), {}});
}

void MappingStore::set_epoch_start(uint64_t unix_ms) {
    std::string v;
    put_be(v, unix_ms, 8);
    queue_.push_back(Op{false, Table::meta, kEpochKey, v});
}

void MappingStore::commit() {
    if (queue_.empty()) return;
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env_->env, nullptr, 0, &txn); rc != 0) fail("begin", rc);
    for (const Op& op : queue_) {
        const MDB_dbi dbi = env_->dbi(op.table);
        MDB_val k = val(op.key);
        int rc = 0;
        if (op.erase) {
            rc = mdb_del(txn, dbi, &k, nullptr);
            if (rc == MDB_NOTFOUND) rc = 0;
        } else {
            MDB_val v = val(op.value);
            rc = mdb_put(txn, dbi, &k, &v, 0);
        }
        if (rc != 0) {
            mdb_txn_abort(txn);
            fail("cannot write a mapping (nothing of this batch is stored)", rc);
        }
    }
    if (int rc = mdb_txn_commit(txn); rc != 0) fail("commit", rc);
    queue_.clear();
}

std::vector<StoredMapping> MappingStore::load() const {
    std::vector<StoredMapping> out;
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env_->env, nullptr, MDB_RDONLY, &txn); rc != 0) fail("begin", rc);
    MDB_cursor* cursor = nullptr;
    if (int rc = mdb_cursor_open(txn, env_->mappings, &cursor); rc != 0) {
        mdb_txn_abort(txn);
        fail("cursor", rc);
    }
    MDB_val k, v;
    for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
        auto m = k.mv_size == 7 ? mapping_of(v) : std::nullopt;
        // A port of a set lies in its set.
        if (m && m->port_set.size != 0 && !m->port_set.contains(key_of(k).internal_port)) m.reset();
        if (!m) {
            mdb_cursor_close(cursor);
            mdb_txn_abort(txn);
            throw StoreError("mapping store " + env_->dir +
                             ": a record this version cannot read (written by a newer cgnd?)");
        }
        out.push_back(StoredMapping{key_of(k), *m});
    }
    mdb_cursor_close(cursor);
    mdb_txn_abort(txn);
    return out;
}

void MappingStore::store_static(const common::StaticMapping& mapping) {
    write_now(Op{false, Table::statics, static_key_bytes(mapping), static_value_bytes(mapping)});
}

void MappingStore::forget_static(const common::StaticMapping& mapping) {
    write_now(Op{true, Table::statics, static_key_bytes(mapping), {}});
}

// One operation in a transaction of its own (the queue is left as it is).
void MappingStore::write_now(const Op& op) {
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env_->env, nullptr, 0, &txn); rc != 0) fail("begin", rc);
    MDB_val k = val(op.key);
    int rc = 0;
    if (op.erase) {
        rc = mdb_del(txn, env_->dbi(op.table), &k, nullptr);
        if (rc == MDB_NOTFOUND) rc = 0;
    } else {
        MDB_val v = val(op.value);
        rc = mdb_put(txn, env_->dbi(op.table), &k, &v, 0);
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        fail("cannot write a static mapping (nothing is stored)", rc);
    }
    if (rc = mdb_txn_commit(txn); rc != 0) fail("commit", rc);
}

std::vector<common::StaticMapping> MappingStore::load_statics() const {
    std::vector<common::StaticMapping> out;
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env_->env, nullptr, MDB_RDONLY, &txn); rc != 0) fail("begin", rc);
    MDB_cursor* cursor = nullptr;
    if (int rc = mdb_cursor_open(txn, env_->statics, &cursor); rc != 0) {
        mdb_txn_abort(txn);
        fail("cursor", rc);
    }
    MDB_val k, v;
    for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
        const auto m = static_of(k, v);
        if (!m) {
            mdb_cursor_close(cursor);
            mdb_txn_abort(txn);
            throw StoreError("mapping store " + env_->dir +
                             ": a static mapping record this version cannot read (written by a "
                             "newer cgnd?)");
        }
        out.push_back(*m);
    }
    mdb_cursor_close(cursor);
    mdb_txn_abort(txn);
    return out;
}

std::optional<uint64_t> MappingStore::epoch_start() const {
    MDB_txn* txn = nullptr;
    if (int rc = mdb_txn_begin(env_->env, nullptr, MDB_RDONLY, &txn); rc != 0) fail("begin", rc);
    std::string key = kEpochKey;
    MDB_val k = val(key), v;
    std::optional<uint64_t> out;
    if (mdb_get(txn, env_->meta, &k, &v) == 0 && v.mv_size == 8) {
        const auto* p = static_cast<const uint8_t*>(v.mv_data);
        out = get_be(p, 8);
    }
    mdb_txn_abort(txn);
    return out;
}

}  // namespace cgn::ctl::pcp
