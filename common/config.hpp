#pragma once
// cgnd's configuration: every option can be given in a config file (INI style, `name = value`)
// and on the command line, which wins. Parsing validates everything and throws ConfigError
// naming the offending option before any port is touched (DESIGN invariant 8).

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/address.hpp"

namespace cgn::common {

class ConfigError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// RFC 4787 REQ-8 names these three filtering behaviours.
enum class FilteringMode : uint8_t {
    endpoint_independent,
    address_dependent,
    address_and_port_dependent,
};
std::string_view to_string(FilteringMode m);

// Whether cgnd places outside packets on their owner's queue with rte_flow rules
// (--outside-flow-rules; docs/architecture.md, "Outside traffic on a NIC").
enum class FlowRulesMode : uint8_t { automatic, require, off };
std::string_view to_string(FlowRulesMode m);

struct Timeouts {
    // Defaults: RFC 4787 REQ-5 (UDP >= 2 min, 5 min recommended), RFC 5382 REQ-5 (TCP
    // established >= 2 h 4 min, transitory >= 4 min), RFC 5508 REQ-1 (ICMP query >= 60 s).
    // RFC 7857 §2.1 splits the transitory timeout: "a NAT SHOULD provide different configurable
    // parameters for configuring the open and closing idle timeouts"; both default to 4 min.
    uint32_t udp_s = 300;
    uint32_t tcp_established_s = 7440;
    uint32_t tcp_opening_s = 240;     // a connection not yet established
    uint32_t tcp_transitory_s = 240;  // closing: both FINs seen, or after an RST
    uint32_t icmp_s = 60;
};
// The largest timeout accepted, in seconds (from the command line and live alike): a day, a
// week for established TCP.
inline constexpr uint32_t kMaxTimeoutS = 86400;
inline constexpr uint32_t kMaxTcpEstablishedTimeoutS = 7 * kMaxTimeoutS;

struct PortRange {
    uint16_t first = 1024;
    uint16_t last = 65535;
    uint32_t size() const { return uint32_t{last} - first + 1; }
};

// A static port mapping: an internal endpoint always translated to one external endpoint,
// reachable from outside (port forwarding at CGN scale). TCP or UDP.
struct StaticMapping {
    // 6 or 17: one port of one protocol. kOneToOne: the whole internal address to the whole
    // external address, every protocol, ports and ICMP identifiers unchanged (Basic NAT,
    // RFC 3022 §2.1), the ports then 0.
    static constexpr uint8_t kOneToOne = 0;
    uint8_t protocol = 0;
    Ipv4Address internal_addr;
    uint16_t internal_port = 0;
    Ipv4Address external_addr;
    uint16_t external_port = 0;

    bool one_to_one() const { return protocol == kOneToOne; }
    // "udp 100.64.0.11:5060 198.51.100.1:5060" (protocol, internal, external), or
    // "ip 100.64.0.11 198.51.100.9" (one-to-one).
    static std::optional<StaticMapping> parse(std::string_view text);
    std::string to_string() const;
    friend bool operator==(const StaticMapping&, const StaticMapping&) = default;
};

// Per-subscriber limits (RFC 6888 REQ-4, REQ-5). Zero means no limit. Per-protocol arrays are
// indexed udp = 0, tcp = 1, icmp = 2.
inline constexpr size_t kLimitProtocols = 3;
struct SubscriberLimits {
    uint32_t max_blocks = 8;        // port blocks on the paired address
    uint32_t max_sessions = 16384;  // all protocols together
    uint32_t max_sessions_per_protocol[kLimitProtocols] = {0, 0, 0};
    uint32_t max_ports_per_protocol[kLimitProtocols] = {0, 0, 0};  // mappings (external ports)
    uint32_t new_sessions_per_second = 0;                          // all protocols together
    uint32_t max_sessions_per_mapping = 0;  // sessions of one mapping (internal endpoint)
    // Sessions opened from outside on one mapping; they count here, not in max_sessions.
    uint32_t max_inbound_sessions_per_mapping = 256;
    uint32_t new_sessions_per_second_per_protocol[kLimitProtocols] = {0, 0, 0};
    friend bool operator==(const SubscriberLimits&, const SubscriberLimits&) = default;
};

// Deterministic NAT (RFC 7422): subscribers of `subscribers` get, by formula, one external
// address and a fixed port range each (see common/deterministic.hpp).
struct DeterministicConfig {
    std::vector<Ipv4Prefix> subscribers;  // empty: the mode is off
    uint32_t ports_per_subscriber = 0;    // 0: as many as the pool allows
    bool overflow = false;                // a full range borrows dynamic port blocks
    bool enabled() const { return !subscribers.empty(); }
    friend bool operator==(const DeterministicConfig&, const DeterministicConfig&) = default;
};

// The PCP server (RFC 6887) and NAT-PMP (RFC 6886) in cgnd's control thread (docs/pcp.md).
inline constexpr size_t kMaxPcpServers = 4;

struct PcpConfig {
    bool enabled = true;
    // The addresses it answers at, on the inside (RFC 7488 §3: one server, one state and one
    // epoch at all of them). Empty: cgnd's inside address.
    std::vector<Ipv4Address> servers;
    // The LMDB directory the PCP mappings are kept in across restarts; empty: not kept.
    std::string store;
    // RFC 6887 §18: the sources that may ask (subscribers on the inside).
    std::vector<Ipv4Prefix> subscribers;
    // §13.1: the sources allowed THIRD_PARTY (operator systems).
    std::vector<Ipv4Prefix> third_party;
    uint32_t min_lifetime_s = 120;  // §15
    uint32_t max_lifetime_s = 86400;
    uint32_t max_mappings_per_subscriber = 64;
    uint32_t requests_per_second = 10;  // per subscriber
    uint32_t request_burst = 20;
    // The external ports a client may suggest; empty (first 0): the NAT's port range.
    PortRange suggestable_ports{0, 0};
};

struct Config {
    std::string config_file;
    std::vector<std::string> eal_args;
    unsigned main_lcore = 0;
    std::vector<unsigned> worker_lcores{1};

    std::string inside_port;  // DPDK device: PCI address or vdev spec
    std::string outside_port;
    InterfaceAddress inside_address;
    InterfaceAddress outside_address;
    std::optional<Ipv4Address> inside_gateway;
    std::optional<Ipv4Address> outside_gateway;
    // IP MTU of each link (RFC 4787 REQ-13/13a, RFC 5508 §7.1.1), kMinMtu to kMaxMtu.
    uint16_t inside_mtu = 1500;
    uint16_t outside_mtu = 1500;
    FlowRulesMode outside_flow_rules = FlowRulesMode::automatic;

    std::vector<Ipv4Prefix> pool;
    PortRange port_range;
    FilteringMode filtering = FilteringMode::endpoint_independent;
    Timeouts timeouts;

    uint32_t max_sessions = 1u << 20;  // per worker
    uint32_t mbufs = 16383;
    uint32_t icmp_error_rate = 1000;  // ICMP errors sent per second per worker, at most

    bool port_parity = false;  // RFC 4787 REQ-4
    // Port block allocation (RFC 6888 REQ-13/14): each pool address's port range is cut into
    // blocks of this many ports (64 to 4096, a multiple of 64); a subscriber holds whole blocks.
    uint32_t port_block_size = 512;
    // A block whose last mapping ended returns to the pool after this long (RFC 6888 REQ-8).
    uint32_t block_hold_down_s = 120;
    SubscriberLimits limits;
    DeterministicConfig deterministic;
    std::vector<StaticMapping> static_mappings;
    // Destinations reached without translation (RFC 6888 REQ-6), e.g. the ISP's own services.
    std::vector<Ipv4Prefix> exempt_destinations;
    std::string control_socket = "/run/cgnd.sock";
    PcpConfig pcp;
};

// The MTU options' range: 576 bytes every IPv4 host must accept (RFC 791, RFC 1122 §3.3.3),
// up to common jumbo frames.
inline constexpr uint32_t kMinMtu = 576;
inline constexpr uint32_t kMaxMtu = 9000;

struct ParseOutcome {
    // answer: print help_text (an offline --lookup or --deterministic-table) and exit.
    enum class Action { run, help, version, answer };
    Action action = Action::run;
    std::string help_text;
    Config config;
};

// Parses argv (argv[0] is the program name). Throws ConfigError with a message naming the
// option for anything missing, malformed or inconsistent.
ParseOutcome parse_command_line(int argc, const char* const* argv);

// Checks that `prefix` may join the pool of `config` (whose pool it is not yet in): no overlap
// with the pool or the inside prefix, not holding cgnd's or a gateway's address, the pool's
// size limits. Throws ConfigError naming --pool.
void check_pool_prefix(const Config& config, const Ipv4Prefix& prefix);
inline constexpr uint64_t kMaxPoolAddresses = 4096;
inline constexpr size_t kMaxPoolPrefixes = 256;

// Checks a static mapping against `config` (which must not hold it yet): the external address
// in the pool, neither endpoint already used by another static mapping, the internal address
// not in the pool. Throws ConfigError naming --static-mapping.
void check_static_mapping(const Config& config, const StaticMapping& mapping);

// The EAL argument vector cgnd passes to rte_eal_init: the user's EAL arguments, the lcore list
// (unless the user gave one) and a device argument for each port.
std::vector<std::string> eal_arguments(const Config& config, const std::string& program);

// The name DPDK gives the port for a device string: "net_ring0,x=y" -> "net_ring0".
std::string device_name(const std::string& device);
bool device_is_vdev(const std::string& device);

}  // namespace cgn::common
