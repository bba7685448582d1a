#pragma once
// External port choice. A PortSet tracks the ports of one (external address, protocol) in the
// configured range; an AddressPool holds every pool address with its three PortSets and the
// number of subscribers paired with it. All memory is reserved at construction: allocating a
// port on the packet path allocates no memory. Owned and used by one worker only.

#include <cstdint>
#include <optional>
#include <vector>

#include "common/address.hpp"
#include "common/config.hpp"
#include "common/random.hpp"
#include "dataplane/nat/steering.hpp"

namespace cgn::dp {

class PortSet {
public:
    // All ports of `range`, or only those in the blocks `ownership` gives this worker.
    explicit PortSet(common::PortRange range, PortOwnership ownership = {});

    // A free port, chosen unpredictably: the search starts at a random port of the range
    // (RFC 6056 §3.3.1 spirit, RFC 4787 REQ-1 needs only that it is free). Nothing when full.
    std::optional<uint16_t> allocate(common::Random& random);
    // The same, preferring a port of the given parity (RFC 4787 REQ-4: an even internal port,
    // e.g. RTP, keeps an even external port so that RTCP can sit on the next odd one); any
    // free port when none of that parity is left.
    std::optional<uint16_t> allocate(common::Random& random, bool odd);
    // Takes a given port; false when it is outside the range, not ours or already taken.
    bool reserve(uint16_t port);
    void release(uint16_t port);
    bool in_use(uint16_t port) const;
    bool owned(uint16_t port) const {
        return port >= range_.first && port <= range_.last &&
               ownership_.owns_block((port - range_.first) / ownership_.block_size);
    }
    uint32_t used() const { return used_; }
    uint32_t capacity() const { return capacity_; }

private:
    // The search of allocate(): the first free port at or after a random start, wrapping,
    // among the ports whose bit is set in `pattern` (a 64-bit mask repeated over the words).
    std::optional<uint16_t> search(common::Random& random, uint64_t pattern);

    common::PortRange range_;
    PortOwnership ownership_;
    std::vector<uint64_t> bits_;  // bit (port - first) set when taken or not ours
    uint32_t capacity_ = 0;
    uint32_t used_ = 0;
};

// Index of a translated protocol in per-protocol arrays.
enum class ProtocolIndex : uint8_t { udp = 0, tcp = 1, icmp = 2 };
inline constexpr size_t kProtocolCount = 3;
std::optional<ProtocolIndex> protocol_index(uint8_t ip_protocol);

class AddressPool {
public:
    // The pool as worker `worker` sees it: every address, with the ports of its own blocks.
    AddressPool(const std::vector<common::Ipv4Prefix>& prefixes, common::PortRange range,
                const Steering& steering = Steering(1, {}), unsigned worker = 0);

    size_t size() const { return addresses_.size(); }
    uint32_t address(uint32_t index) const { return addresses_[index].addr; }
    // Inline: asked for every packet (is the destination a pool address?).
    std::optional<uint32_t> index_of(uint32_t addr) const {
        uint32_t base = 0;
        for (const auto& prefix : prefixes_) {
            if (prefix.contains(common::Ipv4Address{addr}))
                return base + (addr - prefix.address.value);
            base += static_cast<uint32_t>(prefix.size());
        }
        return std::nullopt;
    }
    bool contains(uint32_t addr) const { return index_of(addr).has_value(); }

    // Paired pooling (RFC 4787 REQ-2): a new subscriber gets the address with the fewest
    // subscribers, so load spreads; its later mappings all use that address. The search starts
    // after the previous choice so equal addresses take turns.
    std::optional<uint32_t> pair_subscriber();
    void unpair_subscriber(uint32_t index);
    uint32_t subscribers(uint32_t index) const { return addresses_[index].subscribers; }

    PortSet& ports(uint32_t index, ProtocolIndex p) {
        return addresses_[index].ports[static_cast<size_t>(p)];
    }

    // Pool addresses added at run time: built by the control thread (which allocates), adopted
    // by the worker (which must not). The pool reserves room for kMaxAddresses addresses and
    // kMaxPrefixes prefixes at construction, so adopting never reallocates.
    struct Entry;
    struct Extension {
        std::vector<common::Ipv4Prefix> prefixes;
        std::vector<Entry> entries;
    };
    static Extension build_extension(const std::vector<common::Ipv4Prefix>& prefixes,
                                     common::PortRange range, const Steering& steering,
                                     unsigned worker, uint32_t first_index);
    // False (nothing adopted) when the extension would exceed the reserved room.
    bool extend(Extension&& extension);
    static constexpr size_t kMaxAddresses = 4096;
    static constexpr size_t kMaxPrefixes = 256;

    struct Entry {
        uint32_t addr;
        uint32_t subscribers = 0;
        std::vector<PortSet> ports;
    };

private:
    std::vector<common::Ipv4Prefix> prefixes_;
    std::vector<Entry> addresses_;
    uint32_t next_ = 0;
};

}  // namespace cgn::dp
