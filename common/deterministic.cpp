#include "common/deterministic.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

namespace cgn::common {

namespace {

[[noreturn]] void bad_value(const std::string& option, const std::string& value,
                            const std::string& expected) {
    throw ConfigError("invalid value '" + value + "' for --" + option + ": expected " + expected);
}

std::string join(const std::vector<Ipv4Prefix>& prefixes) {
    std::string out;
    for (const auto& p : prefixes) out += (out.empty() ? "" : " ") + p.to_string();
    return out;
}

uint64_t addresses_in(const std::vector<Ipv4Prefix>& prefixes) {
    uint64_t n = 0;
    for (const auto& p : prefixes) n += p.size();
    return n;
}

uint64_t ceil_div(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

std::string ports_text(uint32_t first, uint32_t last) {
    return std::to_string(first) + "-" + std::to_string(last);
}

std::string range_text(const DeterministicMap::Range& r) {
    return r.external.to_string() + " ports " + ports_text(r.first_port, r.last_port);
}

}  // namespace

DeterministicMap::DeterministicMap(const Config& config)
    : range_(config.port_range), block_size_(config.port_block_size) {
    const DeterministicConfig& det = config.deterministic;
    if (!det.enabled()) return;
    if (config.pool.empty()) throw ConfigError("missing required option --pool (see cgnd --help)");
    if (block_size_ == 0) bad_value("port-block-size", "0", "a multiple of 64 from 64 to 4096");

    const uint64_t d = addresses_in(det.subscribers);
    const uint64_t a = addresses_in(config.pool);
    const uint64_t r = range_.size();
    const std::string prefixes = join(det.subscribers);
    // Even at one port each, the pool must hold every subscriber (this also keeps every index
    // below 2^32).
    if (d > a * r || d > std::numeric_limits<uint32_t>::max() ||
        a > std::numeric_limits<uint32_t>::max())
        bad_value("deterministic", prefixes,
                  "at most " + std::to_string(a * r) + " subscribers (" + std::to_string(a) +
                      " pool addresses of " + std::to_string(r) +
                      " ports, one port each): the prefixes hold " + std::to_string(d) +
                      ", which need " + std::to_string(ceil_div(d, r)) +
                      " pool addresses; the pool has " + std::to_string(a));

    uint64_t p = det.ports_per_subscriber;
    uint64_t s = 0;
    if (p != 0) {
        if (p > r)
            bad_value("deterministic-ports", std::to_string(p),
                      "at most the " + std::to_string(r) + " ports of --port-range");
        s = r / p;
        const uint64_t needed = ceil_div(d, s);
        if (needed > a)
            bad_value("deterministic-ports", std::to_string(p),
                      "at most " + std::to_string(r / ceil_div(d, a)) +
                          " ports per subscriber: at " + std::to_string(p) + " ports, " +
                          std::to_string(s) + " subscribers share an address and the " +
                          std::to_string(d) + " subscribers of --deterministic need " +
                          std::to_string(needed) + " pool addresses; the pool has " +
                          std::to_string(a));
    } else {
        // The port range shared evenly among the fewest subscribers per address that fit
        // (d <= a * r above, so s <= r and p >= 1).
        s = ceil_div(d, a);
        p = r / s;
    }
    subscribers_ = static_cast<uint32_t>(d);
    pool_addresses_ = static_cast<uint32_t>(a);
    per_address_ = static_cast<uint32_t>(s);
    ports_ = static_cast<uint32_t>(p);
    addresses_used_ = static_cast<uint32_t>(ceil_div(d, s));
    blocks_per_address_ = static_cast<uint32_t>(r / block_size_);

    auto segments = [](const std::vector<Ipv4Prefix>& list, std::vector<Segment>& by_index,
                       std::vector<Segment>& by_address) {
        uint32_t first = 0;
        for (const auto& prefix : list) {
            by_index.push_back({prefix, first});
            first += static_cast<uint32_t>(prefix.size());
        }
        by_address = by_index;
        std::sort(by_address.begin(), by_address.end(), [](const Segment& x, const Segment& y) {
            return x.prefix.address < y.prefix.address;
        });
    };
    segments(det.subscribers, subscribers_by_index_, subscribers_by_address_);
    segments(config.pool, pool_by_index_, pool_by_address_);
}

Ipv4Address DeterministicMap::address_at(const std::vector<Segment>& by_index,
                                         uint32_t index) noexcept {
    // The last segment starting at or before `index`.
    auto it = std::upper_bound(by_index.begin(), by_index.end(), index,
                               [](uint32_t i, const Segment& s) { return i < s.first_index; });
    const Segment& segment = *(it - 1);
    return Ipv4Address{segment.prefix.address.value + (index - segment.first_index)};
}

std::optional<uint32_t> DeterministicMap::index_in(const std::vector<Segment>& by_address,
                                                   Ipv4Address address) noexcept {
    // The prefixes do not overlap: only the last one starting at or below `address` may hold it.
    auto it =
        std::upper_bound(by_address.begin(), by_address.end(), address,
                         [](Ipv4Address x, const Segment& s) { return x < s.prefix.address; });
    if (it == by_address.begin()) return std::nullopt;
    const Segment& segment = *(it - 1);
    if (!segment.prefix.contains(address)) return std::nullopt;
    return segment.first_index + (address.value - segment.prefix.address.value);
}

std::optional<uint32_t> DeterministicMap::subscriber_index(Ipv4Address subscriber) const noexcept {
    return index_in(subscribers_by_address_, subscriber);
}

Ipv4Address DeterministicMap::subscriber_address(uint32_t index) const noexcept {
    return address_at(subscribers_by_index_, index);
}

std::optional<uint32_t> DeterministicMap::pool_index(Ipv4Address external) const noexcept {
    return index_in(pool_by_address_, external);
}

Ipv4Address DeterministicMap::pool_address(uint32_t index) const noexcept {
    return address_at(pool_by_index_, index);
}

DeterministicMap::Range DeterministicMap::range_of(uint32_t index) const noexcept {
    const uint32_t pool = index / per_address_;
    // At most F + S * P - 1 <= F + R - 1 = L: fits in 16 bits.
    const uint32_t first = range_.first + (index % per_address_) * ports_;
    return Range{pool_address(pool), static_cast<uint16_t>(first),
                 static_cast<uint16_t>(first + ports_ - 1), pool};
}

std::optional<DeterministicMap::Range> DeterministicMap::forward(
    Ipv4Address subscriber) const noexcept {
    const auto index = subscriber_index(subscriber);
    if (!index) return std::nullopt;
    return range_of(*index);
}

uint32_t DeterministicMap::subscribers_on(uint32_t pool_index) const noexcept {
    if (pool_index >= addresses_used_) return 0;
    return std::min(per_address_, subscribers_ - pool_index * per_address_);
}

std::optional<uint32_t> DeterministicMap::reverse_index(uint32_t pool_index,
                                                        uint16_t port) const noexcept {
    // Below F, or past the last subscriber of this address (which also covers ports above L
    // and addresses without deterministic subscribers): no subscriber's range.
    if (port < range_.first || pool_index >= addresses_used_) return std::nullopt;
    const uint32_t slot = (uint32_t{port} - range_.first) / ports_;
    if (slot >= subscribers_on(pool_index)) return std::nullopt;
    return pool_index * per_address_ + slot;
}

std::optional<Ipv4Address> DeterministicMap::reverse(Ipv4Address external,
                                                     uint16_t port) const noexcept {
    const auto pool = pool_index(external);
    if (!pool) return std::nullopt;
    const auto index = reverse_index(*pool, port);
    if (!index) return std::nullopt;
    return subscriber_address(*index);
}

uint32_t DeterministicMap::first_dynamic_block(uint32_t pool_index) const noexcept {
    // A block that holds even one deterministic port stays out of the dynamic pool: a port
    // shared by both schemes would make the formula's answer wrong.
    const uint64_t area = uint64_t{subscribers_on(pool_index)} * ports_;
    return static_cast<uint32_t>(
        std::min<uint64_t>(blocks_per_address_, ceil_div(area, block_size_)));
}

void check_deterministic(const Config& config) {
    const DeterministicConfig& det = config.deterministic;
    if (!det.enabled()) return;
    // config.cpp checks these as it reads the options; a config built otherwise (tests, a
    // future reload) gets the same rules, which the map's binary searches rely on.
    for (size_t i = 0; i < det.subscribers.size(); ++i) {
        const Ipv4Prefix& p = det.subscribers[i];
        for (const auto& pool : config.pool)
            if (pool.overlaps(p))
                bad_value("deterministic", p.to_string(),
                          "a subscriber prefix not overlapping the pool " + pool.to_string());
        for (size_t j = 0; j < i; ++j)
            if (det.subscribers[j].overlaps(p))
                bad_value(
                    "deterministic", p.to_string(),
                    "a prefix not overlapping --deterministic " + det.subscribers[j].to_string());
        // Subscribers are reached on the inside; the outside prefix is on-link outside.
        if (config.outside_address.subnet.length != 0 && config.outside_address.subnet.overlaps(p))
            bad_value("deterministic", p.to_string(),
                      "a subscriber prefix outside the outside prefix " +
                          config.outside_address.subnet.to_string());
    }

    const DeterministicMap map(config);

    // A static mapping inside a subscriber's range would share its external port with that
    // subscriber, and a lookup of the port would name the subscriber alone.
    for (const auto& m : config.static_mappings) {
        const auto pool = map.pool_index(m.external_addr);
        if (!pool) continue;
        if (m.one_to_one()) {
            // A one-to-one mapping takes every port of its external address.
            if (map.subscribers_on(*pool) > 0)
                bad_value("static-mapping", m.to_string(),
                          "an external address without deterministic ranges (" +
                              m.external_addr.to_string() + " has those of " +
                              std::to_string(map.subscribers_on(*pool)) + " subscribers)");
            continue;
        }
        if (const auto owner = map.reverse_index(*pool, m.external_port)) {
            const auto range = map.range_of(*owner);
            bad_value("static-mapping", m.to_string(),
                      "an external port outside the deterministic range " +
                          ports_text(range.first_port, range.last_port) + " of " +
                          map.subscriber_address(*owner).to_string() + " on " +
                          range.external.to_string());
        }
    }

    if (det.overflow) {
        bool any_dynamic = false;
        for (uint32_t i = 0; i < map.pool_addresses() && !any_dynamic; ++i)
            any_dynamic = map.first_dynamic_block(i) < map.blocks_per_address();
        if (!any_dynamic)
            bad_value("deterministic-overflow", "on",
                      "dynamic port blocks to borrow, but the " +
                          std::to_string(map.ports_per_subscriber()) +
                          "-port ranges of the deterministic subscribers fill every whole block "
                          "of all " +
                          std::to_string(map.pool_addresses()) +
                          " pool addresses (give a smaller --deterministic-ports or more "
                          "--pool addresses)");
    }
}

namespace {

[[noreturn]] void bad_query(std::string_view query) {
    bad_value("lookup", std::string(query),
              "a subscriber address such as 100.64.0.5, or an external address and port such "
              "as 198.51.100.2:1500 or \"198.51.100.2 1500\"");
}

std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

std::optional<uint16_t> parse_port(std::string_view text) {
    uint32_t v = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || v > 65535)
        return std::nullopt;
    return static_cast<uint16_t>(v);
}

std::string lookup_subscriber(const Config& config, const DeterministicMap& map,
                              Ipv4Address address) {
    if (const auto range = map.forward(address))
        return address.to_string() + " -> " + range_text(*range);
    if (map.pool_index(address))
        throw ConfigError(address.to_string() + " is a pool address: give the port too, e.g. " +
                          address.to_string() + ":" + std::to_string(config.port_range.first));
    throw ConfigError(address.to_string() +
                      " is not a deterministic subscriber: --deterministic holds " +
                      join(config.deterministic.subscribers));
}

std::string lookup_endpoint(const Config& config, const DeterministicMap& map, Ipv4Address address,
                            uint16_t port) {
    const std::string endpoint = address.to_string() + ":" + std::to_string(port);
    const auto pool = map.pool_index(address);
    if (!pool)
        throw ConfigError(endpoint + " is not a pool address: --pool holds " + join(config.pool));
    // A static mapping names its party as surely as the formula does.
    std::string statics;
    for (const auto& m : config.static_mappings)
        if (m.external_addr == address && (m.one_to_one() || m.external_port == port))
            statics += (statics.empty() ? "" : "\n") + endpoint + " -> " +
                       m.internal_addr.to_string() + " (static mapping " + m.to_string() + ")";
    if (!statics.empty()) return statics;

    if (const auto index = map.reverse_index(*pool, port)) {
        const auto range = map.range_of(*index);
        return endpoint + " -> " + map.subscriber_address(*index).to_string() + " (ports " +
               ports_text(range.first_port, range.last_port) + ")";
    }

    // Say whose the port is instead, by the layout of this address (see deterministic.hpp).
    const PortRange r = config.port_range;
    const std::string prefix = endpoint + " is not a deterministic port: ";
    if (port < r.first || port > r.last)
        throw ConfigError(prefix + "it is outside --port-range " + ports_text(r.first, r.last) +
                          " (only static mappings use such ports)");
    const uint32_t area_end = r.first + map.subscribers_on(*pool) * map.ports_per_subscriber();
    const uint32_t dynamic_first = r.first + map.first_dynamic_block(*pool) * map.block_size();
    const uint32_t blocks_end = r.first + map.blocks_per_address() * map.block_size();
    const std::string of = " of " + address.to_string();
    if (dynamic_first == blocks_end)
        throw ConfigError(prefix + "ports from " + std::to_string(area_end) + " to " +
                          std::to_string(r.last) + of +
                          " are used by nobody (after the last deterministic range, and no whole "
                          "port block is left for dynamic use)");
    if (port < dynamic_first)
        throw ConfigError(prefix + "ports from " + std::to_string(area_end) + " to " +
                          std::to_string(dynamic_first - 1) + of +
                          " are used by nobody (after the last deterministic range, before the "
                          "first dynamic block)");
    if (port < blocks_end)
        throw ConfigError(prefix + "ports from " + std::to_string(dynamic_first) + " to " +
                          std::to_string(blocks_end - 1) + of +
                          " belong to dynamic blocks (see the block allocation logs)");
    throw ConfigError(prefix + "ports from " + std::to_string(blocks_end) + " to " +
                      std::to_string(r.last) + of +
                      " are used by nobody (they do not fill a whole port block)");
}

DeterministicMap enabled_map(const Config& config) {
    if (!config.deterministic.enabled())
        throw ConfigError("deterministic NAT is off: the config has no --deterministic prefix");
    return DeterministicMap(config);
}

}  // namespace

std::string deterministic_lookup(const Config& config, std::string_view query) {
    const std::string_view q = trim(query);
    std::string_view address_text = q;
    std::optional<std::string_view> port_text;
    if (const auto colon = q.rfind(':'); colon != std::string_view::npos) {
        address_text = q.substr(0, colon);
        port_text = q.substr(colon + 1);
    } else if (const auto space = q.find_first_of(" \t"); space != std::string_view::npos) {
        address_text = q.substr(0, space);
        port_text = trim(q.substr(space));
    }
    const auto address = Ipv4Address::parse(address_text);
    if (!address) bad_query(q);
    std::optional<uint16_t> port;
    if (port_text) {
        port = parse_port(*port_text);
        if (!port) bad_query(q);
    }
    const DeterministicMap map = enabled_map(config);
    return port ? lookup_endpoint(config, map, *address, *port)
                : lookup_subscriber(config, map, *address);
}

std::string deterministic_table(const Config& config) {
    const DeterministicMap map = enabled_map(config);
    std::string out = "# deterministic NAT (RFC 7422): " + std::to_string(map.subscribers()) +
                      " subscribers of " + join(config.deterministic.subscribers) + " on " +
                      std::to_string(map.addresses_used()) + " of the " +
                      std::to_string(map.pool_addresses()) + " pool addresses, " +
                      std::to_string(map.subscribers_per_address()) + " per address, " +
                      std::to_string(map.ports_per_subscriber()) + " ports each from port " +
                      std::to_string(config.port_range.first) + "\n";
    for (uint32_t k = 0; k < map.subscribers(); ++k)
        out += map.subscriber_address(k).to_string() + " -> " + range_text(map.range_of(k)) + "\n";
    return out;
}

}  // namespace cgn::common
