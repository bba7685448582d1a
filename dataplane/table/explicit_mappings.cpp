#include "dataplane/table/explicit_mappings.hpp"

#include "dataplane/nat/flow_key.hpp"

namespace cgn::dp {

namespace {

EndpointKey key(uint8_t protocol, Endpoint e, Side side) {
    EndpointKey k;
    k.addr = e.addr;
    k.port = e.port;
    k.protocol = protocol;
    k.side = side;
    return k;
}

uint64_t pack(Endpoint e) { return (uint64_t{e.addr} << 16) | e.port; }
Endpoint unpack(uint64_t v) {
    return Endpoint{static_cast<uint32_t>(v >> 16), static_cast<uint16_t>(v & 0xffff)};
}

}  // namespace

ExplicitMappingTable::ExplicitMappingTable(const std::string& name, uint32_t capacity,
                                           int socket_id, rte_rcu_qsbr* readers)
    : table_(name, 2 * capacity, sizeof(EndpointKey), socket_id,
             HashTable::Sharing::one_writer_lock_free_readers) {
    table_.attach_rcu(readers);
}

std::optional<Endpoint> ExplicitMappingTable::find(uint8_t protocol, Endpoint e,
                                                   bool inside) const {
    const Side side = inside ? Side::inside : Side::outside;
    const EndpointKey k = key(protocol, e, side);
    uint64_t v = 0;
    if (table_.lookup(&k, v)) return unpack(v);
    if (protocol == kAnyProtocol || one_to_one_.load(std::memory_order_relaxed) == 0)
        return std::nullopt;
    const EndpointKey any = key(kAnyProtocol, Endpoint{e.addr, 0}, side);
    if (!table_.lookup(&any, v)) return std::nullopt;
    return Endpoint{unpack(v).addr, e.port};  // RFC 3022 §2.1: the port is not translated
}

std::optional<Endpoint> ExplicitMappingTable::external_of(uint8_t protocol,
                                                          Endpoint internal) const {
    return find(protocol, internal, true);
}

std::optional<Endpoint> ExplicitMappingTable::internal_of(uint8_t protocol,
                                                          Endpoint external) const {
    return find(protocol, external, false);
}

bool ExplicitMappingTable::insert(uint8_t protocol, Endpoint internal, Endpoint external) {
    if (external_of(protocol, internal) || internal_of(protocol, external)) return false;
    const EndpointKey in = key(protocol, internal, Side::inside);
    const EndpointKey out = key(protocol, external, Side::outside);
    // The outside key last: a worker that finds it (steering an inbound packet) then finds the
    // inside key too.
    if (!table_.insert(&in, pack(external))) return false;
    if (!table_.insert(&out, pack(internal))) {
        table_.erase(&in);
        return false;
    }
    if (protocol == kAnyProtocol) one_to_one_.fetch_add(1, std::memory_order_relaxed);
    return true;
}

std::optional<Endpoint> ExplicitMappingTable::erase(uint8_t protocol, Endpoint internal) {
    auto external = external_of(protocol, internal);
    if (!external) return std::nullopt;
    const EndpointKey in = key(protocol, internal, Side::inside);
    const EndpointKey out = key(protocol, *external, Side::outside);
    table_.erase(&out);
    table_.erase(&in);
    if (protocol == kAnyProtocol) one_to_one_.fetch_sub(1, std::memory_order_relaxed);
    return external;
}

}  // namespace cgn::dp
