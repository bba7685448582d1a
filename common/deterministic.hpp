#pragma once
// Deterministic NAT (RFC 7422): every subscriber of the --deterministic prefixes gets, by a
// formula over the config alone, one pool address and a fixed range of its ports. Who used an
// external address and port then follows from the config, with no per-session or per-block log
// (RFC 7422 Section 2); deterministic_lookup() answers it offline, without a running cgnd.
//
// Layout
//   D subscribers: the --deterministic prefixes concatenated in the order given; subscriber
//     index k is the position in that concatenation. Every address of a prefix counts, network
//     and broadcast included: a subscriber prefix is a list of addresses here, not a link.
//   A pool addresses: the --pool prefixes concatenated in the order given (pool index i, the
//     same numbering as the dataplane's AddressPool).
//   R = the size of --port-range [F, L]; B = --port-block-size. F defaults to 1024, which
//     keeps the well-known ports 0-1023 out of every range as RFC 7422 Section 2 does.
//
//   P, ports per subscriber     = --deterministic-ports, or when it is 0: floor(R / ceil(D / A))
//   S, subscribers per address  = floor(R / P) when P was given, else ceil(D / A)
//   N, addresses used           = ceil(D / S), at most A
//   subscriber k                -> pool address k / S, ports F + (k % S) * P to that + P - 1
//
// Address i < N holds n_i = min(S, D - i * S) subscribers (S on all but maybe the last); its
// deterministic area is F to F + n_i * P - 1. Port blocks are cut from F (block b covers
// F + b * B to F + (b + 1) * B - 1, whole blocks inside the range only); the blocks overlapping
// the area stay out of the dynamic pool, so dynamic blocks on address i start at block
// first_dynamic_block(i) = ceil(n_i * P / B) (0 on addresses N and above). The ports between
// the end of the area and that block boundary belong to nobody: up to B - 1 ports per address
// are wasted to keep blocks aligned (none when n_i * P is a multiple of B).
//
// Worked example: --deterministic 100.64.0.0/24 --pool 198.51.100.0/30, ports 1024-65535,
// blocks of 512. D = 256, A = 4, R = 64512, 126 blocks per address.
//   Automatic P: S = ceil(256 / 4) = 64, P = floor(64512 / 64) = 1008, N = 4.
//     100.64.0.0  (k 0)   -> 198.51.100.0 ports 1024-2031
//     100.64.0.1  (k 1)   -> 198.51.100.0 ports 2032-3039   (1024 + 1 * 1008)
//     100.64.0.63 (k 63)  -> 198.51.100.0 ports 64528-65535 (1024 + 63 * 1008)
//     100.64.0.64 (k 64)  -> 198.51.100.1 ports 1024-2031
//     100.64.0.255 (k 255) -> 198.51.100.3 ports 64528-65535
//     The areas (64 * 1008 = 64512 ports) fill all 126 blocks: first_dynamic_block = 126, no
//     dynamic block is left.
//   --deterministic-ports 1000: S = floor(64512 / 1000) = 64, N = 4;
//     100.64.0.63 -> 198.51.100.0 ports 64024-65023 (1024 + 63 * 1000). The area is 64000 ports,
//     125 blocks exactly: block 125 (65024-65535) of each address is dynamic.
//   --deterministic-ports 1500: S = 43, N = ceil(256 / 43) = 6 > 4 addresses: a ConfigError
//     (at most floor(64512 / 64) = 1008 ports per subscriber fit).
//
// Stability: with --deterministic-ports given, a --deterministic or --pool prefix appended at
// the end leaves every existing subscriber's range as it was; with automatic P, any change of
// D or A changes S and P, hence almost every range. A lookup is only as good as the config it
// is made with: keep each config (or its deterministic_table()) with the dates it was in force,
// and look up with the one in force when the port was used. Ports given to a subscriber beyond
// its range (--deterministic-overflow, RFC 7422 Section 2) are dynamic blocks: those are logged.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/address.hpp"
#include "common/config.hpp"

namespace cgn::common {

class DeterministicMap {
public:
    // One subscriber's share: its external address and ports first_port to last_port.
    struct Range {
        Ipv4Address external;
        uint16_t first_port = 0;
        uint16_t last_port = 0;
        uint32_t pool_index = 0;
        friend bool operator==(const Range&, const Range&) = default;
    };

    // Precomputes the layout of `config`. Throws ConfigError naming --deterministic or
    // --deterministic-ports when it cannot be built (see check_deterministic() for the rest).
    // Without --deterministic the map is empty: forward() and reverse() answer nothing.
    explicit DeterministicMap(const Config& config);

    // The lookups below allocate nothing, throw nothing and cost O(log prefixes): they run on
    // the packet path (forward() when a subscriber is paired, reverse() to steer an outside
    // packet to the worker of the subscriber that owns its port).

    // Nothing for an address outside the --deterministic prefixes.
    std::optional<Range> forward(Ipv4Address subscriber) const noexcept;
    // The range of subscriber `index` (< subscribers()).
    Range range_of(uint32_t index) const noexcept;
    // The subscriber whose range holds `port` of `external`; nothing when `external` is not a
    // pool address or the port is in no subscriber's range (below F, above the areas, in a
    // dynamic block, on an address holding no deterministic subscriber).
    std::optional<Ipv4Address> reverse(Ipv4Address external, uint16_t port) const noexcept;
    // The same by pool index (the dataplane knows it already); returns the subscriber index.
    std::optional<uint32_t> reverse_index(uint32_t pool_index, uint16_t port) const noexcept;

    std::optional<uint32_t> subscriber_index(Ipv4Address subscriber) const noexcept;
    Ipv4Address subscriber_address(uint32_t index) const noexcept;  // index < subscribers()
    std::optional<uint32_t> pool_index(Ipv4Address external) const noexcept;
    Ipv4Address pool_address(uint32_t index) const noexcept;  // index < pool_addresses()

    // The first port block of pool address `pool_index` the dynamic allocator may hand out:
    // the blocks before it overlap deterministic ranges. blocks_per_address() when the ranges
    // leave no whole block; 0 on an address holding no deterministic subscriber.
    uint32_t first_dynamic_block(uint32_t pool_index) const noexcept;
    // n_i: the deterministic subscribers on pool address `pool_index` (0 from addresses_used()).
    uint32_t subscribers_on(uint32_t pool_index) const noexcept;

    bool enabled() const { return subscribers_ != 0; }
    uint32_t subscribers() const { return subscribers_; }              // D
    uint32_t pool_addresses() const { return pool_addresses_; }        // A
    uint32_t subscribers_per_address() const { return per_address_; }  // S
    uint32_t ports_per_subscriber() const { return ports_; }           // P
    uint32_t addresses_used() const { return addresses_used_; }        // N
    uint32_t blocks_per_address() const { return blocks_per_address_; }
    uint32_t block_size() const { return block_size_; }  // B
    PortRange port_range() const { return range_; }

private:
    // A prefix with the index of its first address in the concatenation.
    struct Segment {
        Ipv4Prefix prefix;
        uint32_t first_index = 0;
    };
    // The address at `index` of a concatenation, and the index of an address in it. The first
    // list is in config order, the second sorted by address, for binary searches.
    static Ipv4Address address_at(const std::vector<Segment>& by_index, uint32_t index) noexcept;
    static std::optional<uint32_t> index_in(const std::vector<Segment>& by_address,
                                            Ipv4Address address) noexcept;

    std::vector<Segment> subscribers_by_index_;
    std::vector<Segment> subscribers_by_address_;
    std::vector<Segment> pool_by_index_;
    std::vector<Segment> pool_by_address_;
    PortRange range_;
    uint32_t block_size_ = 0;
    uint32_t blocks_per_address_ = 0;
    uint32_t subscribers_ = 0;
    uint32_t pool_addresses_ = 0;
    uint32_t per_address_ = 0;
    uint32_t ports_ = 0;
    uint32_t addresses_used_ = 0;
};

// Checks that deterministic NAT can run with `config` (nothing to check when it is off): the
// layout fits the pool, the subscriber prefixes overlap neither the pool, nor each other, nor
// the outside prefix, no static mapping's external port lies in a subscriber's range (a lookup
// would name the wrong party), and --deterministic-overflow has dynamic blocks to borrow.
// Throws ConfigError naming the option.
void check_deterministic(const Config& config);

// The operator's offline lookup, from the config alone. `query` is a subscriber address
// ("100.64.0.5" -> "100.64.0.5 -> 198.51.100.1 ports 1024-2031") or an external endpoint
// ("198.51.100.1:1500" or "198.51.100.1 1500" -> "198.51.100.1:1500 -> 100.64.0.64 (ports
// 1024-2031)"; a static mapping's endpoint names its internal address). Throws ConfigError
// saying why for a malformed query, an address that is neither a deterministic subscriber nor
// a pool address, or a port in no deterministic range (and whose it is instead: a dynamic
// block, or nobody).
std::string deterministic_lookup(const Config& config, std::string_view query);

// Every subscriber's range, one line each ("100.64.0.0 -> 198.51.100.0 ports 1024-2031") after
// a '#' line giving the layout: to keep with the config for later lookups.
std::string deterministic_table(const Config& config);

}  // namespace cgn::common
