// What the owning worker does on the control thread's commands (explicit-mapping ports,
// dropping mappings and addresses) and the read-only queries of tests and "show".
#include "dataplane/nat/nat_engine.hpp"

#include <algorithm>
#include "dataplane/nat/nat_keys.hpp"

namespace cgn::dp {

uint32_t NatEngine::drop_mapping(uint8_t protocol, uint32_t addr, uint16_t port, MappingKind kind) {
    const EndpointKey k = endpoint_key(protocol, addr, port, Side::inside);
    uint64_t slot = 0;
    if (!mapping_table_.lookup(&k, slot)) return 0;
    // The command names the mapping it means: the dynamic one an explicit mapping replaces
    // must not take the explicit one with it when that was made first.
    const Mapping& m = mappings_[slot];
    if ((m.subscriber == kNoSlot) != (kind == MappingKind::explicit_mapping)) return 0;
    // Nor a held (PCP) one: the PCP server still answers for it. It goes when the PCP mapping
    // is withdrawn (release_held_mapping) or by drop_address.
    if (m.held) return 0;
    return remove_mapping(static_cast<uint32_t>(slot));
}

uint32_t NatEngine::remove_mapping(uint32_t mapping) {
    Mapping& m = mappings_[mapping];
    if (m.held) {
        m.held = 0;
        --held_count_;
        clear_peer_filters(m);
        // Only a held mapping lives without sessions.
        if (m.sessions == 0) {
            release_mapping(mapping);
            return 0;
        }
    }
    // Releasing the last session releases the mapping: count first, then walk.
    const uint32_t n = m.sessions;
    for (uint32_t i = 0; i < n; ++i) release_session(mappings_[mapping].first_session);
    return n;
}

bool NatEngine::drop_address(uint32_t addr, uint32_t& cursor, uint32_t budget) {
    const auto end =
        static_cast<uint32_t>(std::min<size_t>(mappings_.size(), size_t{cursor} + budget));
    for (uint32_t slot = cursor; slot < end; ++slot) {
        const Mapping& m = mappings_[slot];
        if (m.int_addr != addr) continue;
        // A free slot keeps its old contents: the table says whether it is this mapping.
        const EndpointKey k = endpoint_key(m.protocol, m.int_addr, m.int_port, Side::inside);
        uint64_t found = 0;
        if (!mapping_table_.lookup(&k, found) || found != slot) continue;
        // Every kind, held (PCP) mappings included: Basic NAT takes the whole address.
        remove_mapping(slot);
    }
    cursor = end;
    return end == mappings_.size();
}

int NatEngine::reserve_external_port(uint8_t protocol, uint32_t addr, uint16_t port) {
    const auto index = pool_.index_of(addr);
    const auto proto = protocol_index(protocol);
    if (!index || !proto) return kNotHeld;
    const auto id = pool_.held_block(*index, port);
    if (!id) return kNotHeld;
    if (!pool_.ports(*index, *proto).reserve(port)) return kInUse;
    // The reservation keeps the block (and so its subscriber) until the static mapping goes.
    pool_.port_taken(*id);
    return kReserved;
}

void NatEngine::release_external_port(uint8_t protocol, uint32_t addr, uint16_t port) {
    const auto index = pool_.index_of(addr);
    const auto proto = protocol_index(protocol);
    if (!index || !proto) return;
    const auto id = pool_.held_block(*index, port);
    if (!id || !pool_.ports(*index, *proto).in_use(port)) return;
    pool_.ports(*index, *proto).release(port);
    pool_.port_freed(*id, now_ms_);
}

std::optional<std::pair<uint32_t, uint16_t>> NatEngine::find_mapping(uint8_t protocol,
                                                                     uint32_t addr,
                                                                     uint16_t port) const {
    const EndpointKey k = endpoint_key(protocol, addr, port, Side::inside);
    uint64_t slot = 0;
    if (!mapping_table_.lookup(&k, slot)) return std::nullopt;
    const Mapping& m = mappings_[slot];
    return std::make_pair(m.ext_addr, m.ext_port);
}

std::vector<std::pair<uint32_t, uint16_t>> NatEngine::subscriber_blocks(uint32_t addr) const {
    std::vector<std::pair<uint32_t, uint16_t>> out;
    uint64_t slot = 0;
    if (!subscriber_table_.lookup(&addr, slot)) return out;
    const Subscriber& sub = subscribers_[slot];
    for (uint32_t id = sub.first_block; id != kNoSlot; id = pool_.block_record(id).next)
        out.emplace_back(pool_.address(pool_.index_of_block(id)), pool_.first_port(id));
    return out;
}

std::optional<uint32_t> NatEngine::subscriber_sessions(uint32_t addr) const {
    uint64_t slot = 0;
    if (!subscriber_table_.lookup(&addr, slot)) return std::nullopt;
    return subscribers_[slot].sessions;
}

}  // namespace cgn::dp
