#include "common/config.hpp"

#include <algorithm>
#include <boost/program_options.hpp>
#include <charconv>
#include <fstream>
#include <set>
#include <sstream>

#include "common/config_options.hpp"
#include "common/deterministic.hpp"
#include "common/mbuf_budget.hpp"

namespace po = boost::program_options;

namespace cgn::common {

std::string_view to_string(FlowRulesMode m) {
    switch (m) {
        case FlowRulesMode::automatic:
            return "auto";
        case FlowRulesMode::require:
            return "require";
        case FlowRulesMode::off:
            return "off";
    }
    return "?";
}

std::string_view to_string(FilteringMode m) {
    switch (m) {
        case FilteringMode::endpoint_independent:
            return "endpoint-independent";
        case FilteringMode::address_dependent:
            return "address-dependent";
        case FilteringMode::address_and_port_dependent:
            return "address-and-port-dependent";
    }
    return "?";
}

namespace {

[[noreturn]] void bad_value(const std::string& option, const std::string& value,
                            const std::string& expected) {
    throw ConfigError("invalid value '" + value + "' for --" + option + ": expected " + expected);
}

InterfaceAddress parse_interface(const std::string& option, const std::string& value) {
    auto a = InterfaceAddress::parse(value);
    if (!a || a->subnet.length == 0 || a->subnet.length > 30)
        bad_value(option, value,
                  "an IPv4 address with its prefix length (/1 to /30), e.g. " +
                      std::string(option == "inside-address" ? "100.64.0.1/10" : "192.0.2.1/24"));
    if (a->address == a->subnet.address ||
        a->address.value == (a->subnet.address.value | ~a->subnet.mask()))
        bad_value(option, value, "a host address, not the network or broadcast address");
    return *a;
}

Ipv4Address parse_address(const std::string& option, const std::string& value) {
    auto a = Ipv4Address::parse(value);
    if (!a) bad_value(option, value, "an IPv4 address such as 192.0.2.254");
    return *a;
}

uint32_t parse_number(const std::string& option, const std::string& value, uint32_t min,
                      uint32_t max) {
    uint64_t v = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (value.empty() || ec != std::errc() || ptr != value.data() + value.size() || v < min ||
        v > max)
        bad_value(option, value,
                  "a whole number from " + std::to_string(min) + " to " + std::to_string(max));
    return static_cast<uint32_t>(v);
}

PortRange parse_port_range(const std::string& value, const std::string& option = "port-range",
                           uint32_t min_size = 64) {
    size_t dash = value.find('-');
    if (dash == std::string::npos) bad_value(option, value, "FIRST-LAST, e.g. 1024-65535");
    PortRange r;
    auto port = [&](const std::string& part) {
        uint64_t v = 0;
        auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
        if (part.empty() || ec != std::errc() || ptr != part.data() + part.size() || v < 1 ||
            v > 65535)
            bad_value(option, value, "FIRST-LAST with ports from 1 to 65535");
        return static_cast<uint16_t>(v);
    };
    r.first = port(value.substr(0, dash));
    r.last = port(value.substr(dash + 1));
    if (r.first > r.last) bad_value(option, value, "FIRST not above LAST");
    if (r.size() < min_size) bad_value(option, value, "a range of at least " + std::to_string(min_size) + " ports");
    return r;
}

FlowRulesMode parse_flow_rules(const std::string& value) {
    for (auto m : {FlowRulesMode::automatic, FlowRulesMode::require, FlowRulesMode::off})
        if (value == to_string(m)) return m;
    bad_value("outside-flow-rules", value, "auto, require or off");
}

FilteringMode parse_filtering(const std::string& value) {
    for (auto m : {FilteringMode::endpoint_independent, FilteringMode::address_dependent,
                   FilteringMode::address_and_port_dependent})
        if (value == to_string(m)) return m;
    bad_value("filtering", value,
              "endpoint-independent, address-dependent or address-and-port-dependent");
}

std::vector<unsigned> parse_lcore_list(const std::string& value) {
    std::vector<unsigned> out;
    std::stringstream ss(value);
    std::string item;
    while (std::getline(ss, item, ',')) out.push_back(parse_number("worker-lcores", item, 0, 1023));
    if (out.empty()) bad_value("worker-lcores", value, "a comma-separated list of lcore ids");
    return out;
}

bool looks_like_pci(const std::string& s) {
    // DDDD:BB:DD.F or BB:DD.F, hexadecimal.
    auto is_hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
    std::string t = s;
    if (t.size() == 12 && t[4] == ':') t = t.substr(5);
    if (t.size() != 7 || t[2] != ':' || t[5] != '.') return false;
    return is_hex(t[0]) && is_hex(t[1]) && is_hex(t[3]) && is_hex(t[4]) && t[6] >= '0' &&
           t[6] <= '7';
}

std::string check_device(const std::string& option, const std::string& value) {
    if (device_is_vdev(value) || looks_like_pci(value)) return value;
    bad_value(option, value,
              "a PCI address (0000:03:00.0) or a vdev such as net_af_packet0,iface=veth0, "
              "net_af_xdp0,iface=veth0, net_ring0 or net_memif0");
}

std::vector<std::string> split_spaces(const std::string& s) {
    std::vector<std::string> out;
    std::istringstream in(s);
    std::string w;
    while (in >> w) out.push_back(w);
    return out;
}

template <class T>
const T& required(const po::variables_map& vm, const char* name) {
    if (!vm.count(name) || vm[name].defaulted())
        throw ConfigError(std::string("missing required option --") + name + " (see cgnd --help)");
    return vm[name].as<T>();
}

// Threads, lcores and packet buffers (DPDK).
void read_eal_options(const po::variables_map& vm, Config& c) {
    if (vm.count("config")) c.config_file = vm["config"].as<std::string>();
    c.eal_args = split_spaces(vm["eal-args"].as<std::string>());
    c.main_lcore = vm["main-lcore"].as<unsigned>();
    c.worker_lcores = parse_lcore_list(vm["worker-lcores"].as<std::string>());
    constexpr size_t kMaxWorkers = 64;
    if (c.worker_lcores.size() > kMaxWorkers)
        bad_value("worker-lcores", vm["worker-lcores"].as<std::string>(),
                  "at most " + std::to_string(kMaxWorkers) + " lcores");
    for (size_t i = 0; i < c.worker_lcores.size(); ++i) {
        const unsigned l = c.worker_lcores[i];
        if (l == c.main_lcore)
            bad_value("worker-lcores", vm["worker-lcores"].as<std::string>(),
                      "lcores other than --main-lcore " + std::to_string(c.main_lcore));
        for (size_t j = 0; j < i; ++j)
            if (c.worker_lcores[j] == l)
                bad_value("worker-lcores", vm["worker-lcores"].as<std::string>(),
                          "each lcore once (" + std::to_string(l) + " repeats)");
    }
    c.mbufs = parse_number("mbufs", vm["mbufs"].as<std::string>(), 1023, 1u << 24);
    if (const auto workers = static_cast<unsigned>(c.worker_lcores.size());
        c.mbufs < MbufBudget::minimum(workers))
        bad_value("mbufs", vm["mbufs"].as<std::string>(),
                  "at least " + std::to_string(MbufBudget::minimum(workers)) + " for " +
                      std::to_string(workers) + " worker" + (workers == 1 ? "" : "s") +
                      " (RX and TX descriptors, handoff rings and buffers: " +
                      std::to_string(MbufBudget::fixed(workers)) + "; held fragments: " +
                      std::to_string(2 * MbufBudget::kMinHeldPerWorker) + " per worker)");
}

// The two ports, their addresses, gateways and MTUs.
void read_interface_options(const po::variables_map& vm, Config& c) {
    c.inside_port = check_device("inside-port", required<std::string>(vm, "inside-port"));
    c.outside_port = check_device("outside-port", required<std::string>(vm, "outside-port"));
    if (device_name(c.inside_port) == device_name(c.outside_port))
        bad_value("outside-port", c.outside_port, "a device other than --inside-port");
    c.inside_address =
        parse_interface("inside-address", required<std::string>(vm, "inside-address"));
    c.outside_address =
        parse_interface("outside-address", required<std::string>(vm, "outside-address"));
    if (c.inside_address.subnet.overlaps(c.outside_address.subnet))
        bad_value(
            "outside-address", vm["outside-address"].as<std::string>(),
            "a prefix that does not overlap --inside-address " + c.inside_address.to_string());
    if (vm.count("inside-gateway")) {
        auto gw = parse_address("inside-gateway", vm["inside-gateway"].as<std::string>());
        if (!c.inside_address.subnet.contains(gw) || gw == c.inside_address.address)
            bad_value("inside-gateway", gw.to_string(),
                      "another host in the inside prefix " + c.inside_address.subnet.to_string());
        c.inside_gateway = gw;
    }
    c.inside_mtu = static_cast<uint16_t>(
        parse_number("inside-mtu", vm["inside-mtu"].as<std::string>(), kMinMtu, kMaxMtu));
    c.outside_mtu = static_cast<uint16_t>(
        parse_number("outside-mtu", vm["outside-mtu"].as<std::string>(), kMinMtu, kMaxMtu));
    c.outside_flow_rules = parse_flow_rules(vm["outside-flow-rules"].as<std::string>());
    if (vm.count("outside-gateway")) {
        auto gw = parse_address("outside-gateway", vm["outside-gateway"].as<std::string>());
        if (!c.outside_address.subnet.contains(gw) || gw == c.outside_address.address)
            bad_value("outside-gateway", gw.to_string(),
                      "another host in the outside prefix " + c.outside_address.subnet.to_string());
        c.outside_gateway = gw;
    }
}

// The pool, port range, filtering, timeouts and table sizes.
void read_pool_and_timeouts(const po::variables_map& vm, Config& c) {
    if (!vm.count("pool")) throw ConfigError("missing required option --pool (see cgnd --help)");
    for (const auto& text : vm["pool"].as<std::vector<std::string>>()) {
        auto p = Ipv4Prefix::parse(text);
        if (!p || p->length < 8)
            bad_value("pool", text, "an IPv4 prefix with zero host bits, e.g. 198.51.100.0/28");
        check_pool_prefix(c, *p);
        c.pool.push_back(*p);
    }

    c.port_range = parse_port_range(vm["port-range"].as<std::string>());
    c.filtering = parse_filtering(vm["filtering"].as<std::string>());
    c.timeouts.udp_s =
        parse_number("timeout-udp", vm["timeout-udp"].as<std::string>(), 1, kMaxTimeoutS);
    c.timeouts.tcp_established_s =
        parse_number("timeout-tcp-established", vm["timeout-tcp-established"].as<std::string>(), 1,
                     kMaxTcpEstablishedTimeoutS);
    c.timeouts.tcp_opening_s = parse_number(
        "timeout-tcp-opening", vm["timeout-tcp-opening"].as<std::string>(), 1, kMaxTimeoutS);
    c.timeouts.tcp_transitory_s = parse_number(
        "timeout-tcp-transitory", vm["timeout-tcp-transitory"].as<std::string>(), 1, kMaxTimeoutS);
    c.timeouts.icmp_s =
        parse_number("timeout-icmp", vm["timeout-icmp"].as<std::string>(), 1, kMaxTimeoutS);
    c.max_sessions =
        parse_number("max-sessions", vm["max-sessions"].as<std::string>(), 16, 1u << 26);
    c.icmp_error_rate =
        parse_number("icmp-error-rate", vm["icmp-error-rate"].as<std::string>(), 0, 1000000);
    c.port_parity = vm["port-parity"].as<bool>();
}

// Port blocks (RFC 6888 REQ-13/14): size, hold-down, blocks per subscriber.
void read_block_options(const po::variables_map& vm, Config& c) {
    c.port_block_size =
        parse_number("port-block-size", vm["port-block-size"].as<std::string>(), 64, 4096);
    if (c.port_block_size % 64 != 0)
        bad_value("port-block-size", vm["port-block-size"].as<std::string>(),
                  "a multiple of 64 from 64 to 4096");
    // The default shrinks to fit a small --port-range; a given size must fit.
    if (vm["port-block-size"].defaulted())
        c.port_block_size = std::min(c.port_block_size, c.port_range.size() / 64 * 64);
    if (c.port_block_size > c.port_range.size())
        bad_value("port-block-size", vm["port-block-size"].as<std::string>(),
                  "at most the " + std::to_string(c.port_range.size()) + " ports of --port-range");
    c.block_hold_down_s =
        parse_number("block-hold-down", vm["block-hold-down"].as<std::string>(), 0,
                     kMaxTimeoutS);  // at most a day, like the timeouts
    // Block b of every address is worker b % workers' (steering by the port alone): each
    // worker needs a block of every address, and a subscriber's blocks are in its worker's
    // share.
    const auto workers = static_cast<uint32_t>(c.worker_lcores.size());
    if (c.port_range.size() / c.port_block_size < workers)
        bad_value("port-block-size", vm["port-block-size"].as<std::string>(),
                  "at most " + std::to_string(c.port_range.size() / workers / 64 * 64) + " with " +
                      std::to_string(workers) +
                      " workers (each needs a block of every pool address)");
    const uint32_t blocks_per_address = c.port_range.size() / c.port_block_size / workers;
    c.limits.max_blocks = vm["max-blocks-per-subscriber"].defaulted()
                              ? std::min(c.limits.max_blocks, blocks_per_address)
                              : parse_number("max-blocks-per-subscriber",
                                             vm["max-blocks-per-subscriber"].as<std::string>(), 1,
                                             blocks_per_address);
}

// The subscriber limits (RFC 6888 REQ-4/5) other than blocks.
void read_limit_options(const po::variables_map& vm, Config& c) {
    c.limits.max_sessions =
        parse_number("max-sessions-per-subscriber",
                     vm["max-sessions-per-subscriber"].as<std::string>(), 0, 1u << 26);
    c.limits.max_sessions_per_mapping = parse_number(
        "max-sessions-per-mapping", vm["max-sessions-per-mapping"].as<std::string>(), 0, 1u << 26);
    c.limits.max_inbound_sessions_per_mapping =
        parse_number("max-inbound-sessions-per-mapping",
                     vm["max-inbound-sessions-per-mapping"].as<std::string>(), 0, 1u << 26);
    c.limits.new_sessions_per_second =
        parse_number("max-new-sessions-per-second",
                     vm["max-new-sessions-per-second"].as<std::string>(), 0, 10000000);
    const char* const protocols[kLimitProtocols] = {"udp", "tcp", "icmp"};
    for (size_t i = 0; i < kLimitProtocols; ++i) {
        const std::string suffix = std::string("-") + protocols[i];
        auto optional_number = [&](const std::string& name, uint32_t max) -> uint32_t {
            if (!vm.count(name)) return 0;
            return parse_number(name, vm[name].as<std::string>(), 0, max);
        };
        c.limits.max_sessions_per_protocol[i] =
            optional_number("max-sessions-per-subscriber" + suffix, 1u << 26);
        c.limits.max_ports_per_protocol[i] =
            optional_number("max-ports-per-subscriber" + suffix, 65536);
        c.limits.new_sessions_per_second_per_protocol[i] =
            optional_number("max-new-sessions-per-second" + suffix, 10000000);
    }
}

// Deterministic NAT (RFC 7422).
void read_deterministic_options(const po::variables_map& vm, Config& c) {
    if (vm.count("deterministic")) {
        for (const auto& text : vm["deterministic"].as<std::vector<std::string>>()) {
            auto p = Ipv4Prefix::parse(text);
            if (!p || p->length < 8)
                bad_value("deterministic", text,
                          "a subscriber prefix with zero host bits, e.g. 100.64.0.0/22");
            for (const auto& pool : c.pool)
                if (pool.overlaps(*p))
                    bad_value("deterministic", text,
                              "a subscriber prefix not overlapping the pool " + pool.to_string());
            for (const auto& other : c.deterministic.subscribers)
                if (other.overlaps(*p))
                    bad_value("deterministic", text,
                              "a prefix not overlapping --deterministic " + other.to_string());
            c.deterministic.subscribers.push_back(*p);
        }
    }
    c.deterministic.ports_per_subscriber = parse_number(
        "deterministic-ports", vm["deterministic-ports"].as<std::string>(), 0, c.port_range.size());
    c.deterministic.overflow = vm["deterministic-overflow"].as<bool>();
}

// Static mappings and exempt destinations (RFC 6888 REQ-6).
void read_static_mappings(const po::variables_map& vm, Config& c) {
    if (vm.count("static-mapping")) {
        for (const auto& text : vm["static-mapping"].as<std::vector<std::string>>()) {
            auto m = StaticMapping::parse(text);
            if (!m)
                bad_value("static-mapping", text,
                          "\"tcp|udp INTERNAL-ADDRESS:PORT EXTERNAL-ADDRESS:PORT\", e.g. \"tcp "
                          "100.64.0.11:80 198.51.100.1:8080\", or \"ip INTERNAL-ADDRESS "
                          "EXTERNAL-ADDRESS\" (one-to-one)");
            check_static_mapping(c, *m);
            c.static_mappings.push_back(*m);
        }
    }
    if (vm.count("exempt-destination")) {
        for (const auto& text : vm["exempt-destination"].as<std::vector<std::string>>()) {
            auto p = Ipv4Prefix::parse(text);
            if (!p)
                bad_value("exempt-destination", text,
                          "an IPv4 prefix with zero host bits, e.g. 192.0.2.53/32");
            for (const auto& pool : c.pool)
                if (pool.overlaps(*p))
                    bad_value("exempt-destination", text,
                              "a prefix not overlapping the pool " + pool.to_string());
            if (p->overlaps(c.inside_address.subnet))
                bad_value(
                    "exempt-destination", text,
                    "a prefix outside the inside prefix " + c.inside_address.subnet.to_string());
            c.exempt_destinations.push_back(*p);
        }
        if (c.exempt_destinations.size() > 64)
            bad_value("exempt-destination", std::to_string(c.exempt_destinations.size()),
                      "at most 64 prefixes");
    }
}

// The deterministic formula checked against the rest, then the control socket.
void read_control_options(const po::variables_map& vm, Config& c) {
    if (c.deterministic.enabled()) check_deterministic(c);
    c.control_socket = vm["control-socket"].as<std::string>();
    if (c.control_socket.empty() || c.control_socket.size() > 100)
        bad_value("control-socket", c.control_socket, "a path of 1 to 100 characters");
}

std::vector<Ipv4Prefix> read_prefixes(const po::variables_map& vm, const std::string& option) {
    std::vector<Ipv4Prefix> out;
    if (!vm.count(option)) return out;
    for (const auto& text : vm[option].as<std::vector<std::string>>()) {
        const auto p = Ipv4Prefix::parse(text);
        if (!p) bad_value(option, text, "an IPv4 prefix with zero host bits, e.g. 100.64.0.0/10");
        out.push_back(*p);
    }
    if (out.size() > 64) bad_value(option, std::to_string(out.size()), "at most 64 prefixes");
    return out;
}

// The PCP server (RFC 6887, RFC 6886): its addresses, store, who may ask, and its limits.
void read_pcp_options(const po::variables_map& vm, Config& c) {
    PcpConfig& p = c.pcp;
    if (vm.count("pcp-server")) {
        for (const auto& text : vm["pcp-server"].as<std::vector<std::string>>()) {
            if (text == "off") {
                p.enabled = false;
                continue;
            }
            const Ipv4Address a = parse_address("pcp-server", text);
            // Answered on the inside link (ARP included): an address of its subnet, and not
            // one already used there.
            if (!c.inside_address.subnet.contains(a) || a == c.inside_address.subnet.address ||
                a.value == (c.inside_address.subnet.address.value | ~c.inside_address.subnet.mask()))
                bad_value("pcp-server", text,
                          "a host address of the inside subnet " +
                              c.inside_address.subnet.to_string() + ", or off");
            if (c.inside_gateway && a == *c.inside_gateway)
                bad_value("pcp-server", text, "an address other than the inside gateway");
            if (std::find(p.servers.begin(), p.servers.end(), a) != p.servers.end())
                bad_value("pcp-server", text, "each address once");
            p.servers.push_back(a);
        }
        if (!p.enabled && !p.servers.empty())
            bad_value("pcp-server", "off", "either off or addresses, not both");
        if (p.servers.size() > kMaxPcpServers)
            bad_value("pcp-server", std::to_string(p.servers.size()),
                      "at most " + std::to_string(kMaxPcpServers) + " addresses");
    }
    if (vm.count("pcp-store")) p.store = vm["pcp-store"].as<std::string>();
    p.subscribers = read_prefixes(vm, "pcp-subscribers");
    if (p.subscribers.empty()) p.subscribers.push_back(Ipv4Prefix{Ipv4Address{0}, 0});
    p.third_party = read_prefixes(vm, "pcp-third-party");
    // RFC 6887 §15: "the PCP server SHOULD NOT offer a lifetime less than 120 seconds"; and
    // at most a day by default, whatever a client asks.
    p.min_lifetime_s =
        parse_number("pcp-min-lifetime", vm["pcp-min-lifetime"].as<std::string>(), 1, 86400);
    p.max_lifetime_s = parse_number("pcp-max-lifetime", vm["pcp-max-lifetime"].as<std::string>(),
                                    p.min_lifetime_s, 30u * 86400);
    p.max_mappings_per_subscriber = parse_number(
        "pcp-max-mappings", vm["pcp-max-mappings"].as<std::string>(), 1, 65536);
    p.requests_per_second =
        parse_number("pcp-request-rate", vm["pcp-request-rate"].as<std::string>(), 1, 100000);
    p.request_burst =
        parse_number("pcp-request-burst", vm["pcp-request-burst"].as<std::string>(), 1, 100000);
    if (vm.count("pcp-ports")) {
        p.suggestable_ports = parse_port_range(vm["pcp-ports"].as<std::string>(), "pcp-ports", 1);
        if (p.suggestable_ports.first < c.port_range.first ||
            p.suggestable_ports.last > c.port_range.last)
            bad_value("pcp-ports", vm["pcp-ports"].as<std::string>(),
                      "a range within --port-range " + std::to_string(c.port_range.first) + "-" +
                          std::to_string(c.port_range.last));
    } else {
        p.suggestable_ports = c.port_range;
    }
}

Config build(const po::variables_map& vm) {
    Config c;
    read_eal_options(vm, c);
    read_interface_options(vm, c);
    read_pool_and_timeouts(vm, c);
    read_block_options(vm, c);
    read_limit_options(vm, c);
    read_deterministic_options(vm, c);
    read_static_mappings(vm, c);
    read_control_options(vm, c);
    read_pcp_options(vm, c);
    return c;
}

}  // namespace

ParseOutcome parse_command_line(int argc, const char* const* argv) {
    auto desc = describe();
    ParseOutcome out;
    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
        if (vm.count("help")) {
            std::ostringstream help;
            help << "cgnd - carrier-grade NAT (NAPT44) on DPDK\n\n"
                 << "Usage: cgnd [--config FILE] [options]\n\n"
                 << desc << "\nSignals: SIGUSR1 prints the counters; SIGINT/SIGTERM stop cgnd "
                 << "(ports stopped, counters printed).\n";
            out.action = ParseOutcome::Action::help;
            out.help_text = help.str();
            return out;
        }
        if (vm.count("version")) {
            out.action = ParseOutcome::Action::version;
            return out;
        }
        if (vm.count("config")) {
            const auto& file = vm["config"].as<std::string>();
            std::ifstream in(file);
            if (!in) throw ConfigError("cannot read --config file '" + file + "'");
            po::store(po::parse_config_file(in, desc), vm);
        }
        po::notify(vm);
        out.config = build(vm);
        // Offline answers (RFC 7422: the mapping is known from the configuration alone).
        if (vm.count("lookup")) {
            out.action = ParseOutcome::Action::answer;
            out.help_text = deterministic_lookup(out.config, vm["lookup"].as<std::string>()) + "\n";
        } else if (vm["deterministic-table"].as<bool>()) {
            out.action = ParseOutcome::Action::answer;
            out.help_text = deterministic_table(out.config);
        }
    } catch (const po::error& e) {
        throw ConfigError(e.what());
    }
    return out;
}

void check_pool_prefix(const Config& c, const Ipv4Prefix& p) {
    const std::string text = p.to_string();
    uint64_t addresses = p.size();
    for (const auto& other : c.pool) {
        if (other.overlaps(p))
            bad_value("pool", text, "a prefix not overlapping pool " + other.to_string());
        addresses += other.size();
    }
    if (p.contains(c.outside_address.address) || p.contains(c.inside_address.address))
        bad_value("pool", text, "a prefix not holding cgnd's own interface addresses");
    // cgnd answers ARP for every pool address: a pool holding a router would steal it.
    for (const auto& gw : {c.outside_gateway, c.inside_gateway})
        if (gw && p.contains(*gw))
            bad_value("pool", text, "a prefix not holding the gateway " + gw->to_string());
    if (c.inside_address.subnet.overlaps(p))
        bad_value("pool", text,
                  "a prefix outside the inside prefix " + c.inside_address.subnet.to_string());
    if (addresses > kMaxPoolAddresses)
        bad_value("pool", text,
                  "a pool of at most " + std::to_string(kMaxPoolAddresses) + " addresses in all");
    if (c.pool.size() + 1 > kMaxPoolPrefixes)
        bad_value("pool", text, "at most " + std::to_string(kMaxPoolPrefixes) + " prefixes");
}

void check_static_mapping(const Config& c, const StaticMapping& m) {
    const std::string text = m.to_string();
    bool in_pool = false;
    for (const auto& p : c.pool) in_pool |= p.contains(m.external_addr);
    if (!in_pool) bad_value("static-mapping", text, "an external address in the pool");
    for (const auto& p : c.pool)
        if (p.contains(m.internal_addr))
            bad_value("static-mapping", text, "an internal address outside the pool");
    for (const auto& d : c.deterministic.subscribers)
        if (m.one_to_one() && d.contains(m.internal_addr))
            bad_value("static-mapping", text,
                      "an internal address outside --deterministic " + d.to_string());
    for (const auto& other : c.static_mappings) {
        // A one-to-one mapping takes its two addresses whole.
        if (m.one_to_one() || other.one_to_one()) {
            if (other.internal_addr == m.internal_addr)
                bad_value(
                    "static-mapping", text,
                    "an internal address not mapped already (by \"" + other.to_string() + "\")");
            if (other.external_addr == m.external_addr)
                bad_value(
                    "static-mapping", text,
                    "an external address not mapped already (by \"" + other.to_string() + "\")");
            continue;
        }
        if (other.protocol != m.protocol) continue;
        if (other.internal_addr == m.internal_addr && other.internal_port == m.internal_port)
            bad_value("static-mapping", text,
                      "an internal endpoint not mapped already (by \"" + other.to_string() + "\")");
        if (other.external_addr == m.external_addr && other.external_port == m.external_port)
            bad_value("static-mapping", text,
                      "an external endpoint not mapped already (by \"" + other.to_string() + "\")");
    }
}

std::optional<StaticMapping> StaticMapping::parse(std::string_view text) {
    std::istringstream in{std::string(text)};
    std::string proto, internal, external, rest;
    if (!(in >> proto >> internal >> external) || (in >> rest)) return std::nullopt;
    StaticMapping m;
    if (proto == "ip") {
        // One-to-one: two bare addresses.
        auto in_addr = Ipv4Address::parse(internal);
        auto ex_addr = Ipv4Address::parse(external);
        if (!in_addr || !ex_addr) return std::nullopt;
        m.protocol = kOneToOne;
        m.internal_addr = *in_addr;
        m.external_addr = *ex_addr;
        return m;
    }
    if (proto == "tcp")
        m.protocol = 6;
    else if (proto == "udp")
        m.protocol = 17;
    else
        return std::nullopt;
    auto endpoint = [](const std::string& s, Ipv4Address& addr, uint16_t& port) {
        const size_t colon = s.rfind(':');
        if (colon == std::string::npos) return false;
        auto a = Ipv4Address::parse(std::string_view(s).substr(0, colon));
        uint32_t p = 0;
        const char* begin = s.data() + colon + 1;
        auto [ptr, ec] = std::from_chars(begin, s.data() + s.size(), p);
        if (!a || ec != std::errc() || ptr != s.data() + s.size() || begin == ptr || p == 0 ||
            p > 65535)
            return false;
        addr = *a;
        port = static_cast<uint16_t>(p);
        return true;
    };
    if (!endpoint(internal, m.internal_addr, m.internal_port) ||
        !endpoint(external, m.external_addr, m.external_port))
        return std::nullopt;
    return m;
}

std::string StaticMapping::to_string() const {
    if (one_to_one()) return "ip " + internal_addr.to_string() + " " + external_addr.to_string();
    return std::string(protocol == 6 ? "tcp " : "udp ") + internal_addr.to_string() + ":" +
           std::to_string(internal_port) + " " + external_addr.to_string() + ":" +
           std::to_string(external_port);
}

std::string device_name(const std::string& device) { return device.substr(0, device.find(',')); }

bool device_is_vdev(const std::string& device) {
    return device.rfind("net_", 0) == 0 && device_name(device).size() > 4;
}

std::vector<std::string> eal_arguments(const Config& config, const std::string& program) {
    std::vector<std::string> args{program};
    bool has_lcores = false;
    for (const auto& a : config.eal_args) {
        if (a == "-l" || a == "-c" || a == "--lcores" || a.rfind("--lcores=", 0) == 0 ||
            (a.size() > 2 && (a.rfind("-l", 0) == 0 || a.rfind("-c", 0) == 0)))
            has_lcores = true;
        args.push_back(a);
    }
    if (!has_lcores) {
        std::string list = std::to_string(config.main_lcore);
        for (unsigned l : config.worker_lcores) list.append(",").append(std::to_string(l));
        args.insert(args.begin() + 1,
                    {"-l", list, "--main-lcore", std::to_string(config.main_lcore)});
    }
    for (const auto* dev : {&config.inside_port, &config.outside_port}) {
        args.push_back(device_is_vdev(*dev) ? "--vdev" : "-a");
        args.push_back(*dev);
    }
    return args;
}

}  // namespace cgn::common
