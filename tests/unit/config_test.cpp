#include "common/config.hpp"
#include "common/mbuf_budget.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace cgn::common {
namespace {

using Action = ParseOutcome::Action;
using Options = std::map<std::string, std::string>;  // option name (without --) -> value

// The smallest valid command line.
Options required_options() {
    return {{"inside-port", "net_ring0"},
            {"outside-port", "net_ring1"},
            {"inside-address", "100.64.0.1/10"},
            {"outside-address", "192.0.2.1/24"},
            {"pool", "198.51.100.0/28"}};
}

std::vector<std::string> to_args(const Options& options) {
    std::vector<std::string> args{"cgnd"};
    for (const auto& [name, value] : options) {
        args.push_back("--" + name);
        args.push_back(value);
    }
    return args;
}

ParseOutcome parse(const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    for (const auto& a : args) argv.push_back(a.c_str());
    return parse_command_line(static_cast<int>(argv.size()), argv.data());
}

ParseOutcome parse(const Options& options) { return parse(to_args(options)); }

Config parse_config(const Options& options) { return parse(options).config; }

// The ConfigError message for a command line that must fail; records a failure when it parses.
std::string error_of(const std::vector<std::string>& args) {
    try {
        parse(args);
    } catch (const ConfigError& e) {
        return e.what();
    } catch (const std::exception& e) {
        ADD_FAILURE() << "not a ConfigError: " << e.what();
        return {};
    }
    ADD_FAILURE() << "parsed without error";
    return {};
}

std::string error_of(const Options& options) { return error_of(to_args(options)); }

Options with(Options options, const std::string& name, const std::string& value) {
    options[name] = value;
    return options;
}

Options without(Options options, const std::string& name) {
    options.erase(name);
    return options;
}

// A config file that exists for the duration of a test.
class TempFile {
public:
    explicit TempFile(const std::string& contents) {
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        path_ = std::filesystem::temp_directory_path() /
                ("cgn-unit-" + std::to_string(::getpid()) + "-" + info->name() + "-" +
                 std::to_string(counter_++) + ".conf");
        std::ofstream out(path_);
        out << contents;
    }
    ~TempFile() {
        std::error_code ignored;
        std::filesystem::remove(path_, ignored);
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    std::string path() const { return path_.string(); }

private:
    static inline int counter_ = 0;
    std::filesystem::path path_;
};

// ---- Defaults --------------------------------------------------------------------------------

TEST(Config, Defaults) {
    const Config c = parse_config(required_options());
    EXPECT_EQ(c.port_range.first, 1024);
    EXPECT_EQ(c.port_range.last, 65535);
    EXPECT_EQ(c.port_range.size(), 64512u);
    EXPECT_EQ(c.filtering, FilteringMode::endpoint_independent);
    EXPECT_EQ(c.timeouts.udp_s, 300u);
    EXPECT_EQ(c.timeouts.tcp_established_s, 7440u);
    EXPECT_EQ(c.timeouts.tcp_opening_s, 240u);
    EXPECT_EQ(c.timeouts.tcp_transitory_s, 240u);
    EXPECT_EQ(c.timeouts.icmp_s, 60u);
    EXPECT_EQ(c.max_sessions, 1u << 20);
    EXPECT_EQ(c.mbufs, 16383u);
    EXPECT_EQ(c.icmp_error_rate, 1000u);
    EXPECT_EQ(c.main_lcore, 0u);
    EXPECT_EQ(c.worker_lcores, std::vector<unsigned>{1});
    EXPECT_TRUE(c.eal_args.empty());
    EXPECT_TRUE(c.config_file.empty());
    EXPECT_FALSE(c.inside_gateway.has_value());
    EXPECT_FALSE(c.outside_gateway.has_value());
}

TEST(Config, ReadsTheRequiredOptions) {
    const Config c = parse_config(required_options());
    EXPECT_EQ(c.inside_port, "net_ring0");
    EXPECT_EQ(c.outside_port, "net_ring1");
    EXPECT_EQ(c.inside_address.to_string(), "100.64.0.1/10");
    EXPECT_EQ(c.inside_address.subnet.to_string(), "100.64.0.0/10");
    EXPECT_EQ(c.outside_address.to_string(), "192.0.2.1/24");
    ASSERT_EQ(c.pool.size(), 1u);
    EXPECT_EQ(c.pool[0].to_string(), "198.51.100.0/28");
}

TEST(Config, ReadsEveryOptionalOption) {
    auto args = to_args(required_options());
    for (const char* a : {"--pool",
                          "203.0.113.0/29",
                          "--port-range",
                          "2000-2999",
                          "--filtering",
                          "address-and-port-dependent",
                          "--timeout-udp",
                          "121",
                          "--timeout-tcp-established",
                          "7441",
                          "--timeout-tcp-opening",
                          "31",
                          "--timeout-tcp-transitory",
                          "241",
                          "--timeout-icmp",
                          "61",
                          "--max-sessions",
                          "5000",
                          "--mbufs",
                          "8191",
                          "--icmp-error-rate",
                          "0",
                          "--main-lcore",
                          "2",
                          "--worker-lcores",
                          "3",
                          "--inside-gateway",
                          "100.64.0.254",
                          "--outside-gateway",
                          "192.0.2.254",
                          "--eal-args",
                          "--no-huge  --no-pci -m 512"})
        args.push_back(a);
    const Config c = parse(args).config;
    ASSERT_EQ(c.pool.size(), 2u);
    EXPECT_EQ(c.pool[0].to_string(), "198.51.100.0/28");
    EXPECT_EQ(c.pool[1].to_string(), "203.0.113.0/29");
    EXPECT_EQ(c.port_range.first, 2000);
    EXPECT_EQ(c.port_range.last, 2999);
    EXPECT_EQ(c.filtering, FilteringMode::address_and_port_dependent);
    EXPECT_EQ(c.timeouts.udp_s, 121u);
    EXPECT_EQ(c.timeouts.tcp_established_s, 7441u);
    EXPECT_EQ(c.timeouts.tcp_opening_s, 31u);
    EXPECT_EQ(c.timeouts.tcp_transitory_s, 241u);
    EXPECT_EQ(c.timeouts.icmp_s, 61u);
    EXPECT_EQ(c.max_sessions, 5000u);
    EXPECT_EQ(c.mbufs, 8191u);
    EXPECT_EQ(c.icmp_error_rate, 0u);
    EXPECT_EQ(c.main_lcore, 2u);
    EXPECT_EQ(c.worker_lcores, std::vector<unsigned>{3});
    ASSERT_TRUE(c.inside_gateway.has_value());
    EXPECT_EQ(c.inside_gateway->to_string(), "100.64.0.254");
    ASSERT_TRUE(c.outside_gateway.has_value());
    EXPECT_EQ(c.outside_gateway->to_string(), "192.0.2.254");
    EXPECT_EQ(c.eal_args, (std::vector<std::string>{"--no-huge", "--no-pci", "-m", "512"}));
}

TEST(Config, FilteringModesAndTheirNames) {
    for (auto mode : {FilteringMode::endpoint_independent, FilteringMode::address_dependent,
                      FilteringMode::address_and_port_dependent}) {
        const Config c =
            parse_config(with(required_options(), "filtering", std::string(to_string(mode))));
        EXPECT_EQ(c.filtering, mode);
    }
    EXPECT_EQ(to_string(FilteringMode::address_dependent), "address-dependent");
}

// ---- Missing options -------------------------------------------------------------------------

TEST(Config, EachMissingRequiredOptionIsNamed) {
    for (const auto& [name, value] : required_options()) {
        const auto message = error_of(without(required_options(), name));
        EXPECT_NE(message.find("--" + name), std::string::npos) << name << ": " << message;
    }
}

TEST(Config, AnOptionWithoutItsValueIsNamed) {
    auto args = to_args(required_options());
    args.push_back("--filtering");
    const auto message = error_of(args);
    EXPECT_NE(message.find("filtering"), std::string::npos) << message;
}

TEST(Config, UnknownCommandLineOptionIsAnError) {
    auto args = to_args(required_options());
    args.push_back("--frobnicate");
    args.push_back("1");
    const auto message = error_of(args);
    EXPECT_NE(message.find("frobnicate"), std::string::npos) << message;
}

// ---- Bad values: each error names its option -------------------------------------------------

struct BadValue {
    const char* option;  // the option set to `value`, and the one the message must name
    const char* value;
    const char* named = nullptr;  // the option named, when not `option`
};

void expect_named(const Options& options, const std::string& named, const std::string& what) {
    const auto message = error_of(options);
    EXPECT_NE(message.find("--" + named), std::string::npos)
        << what << " -> message does not name --" << named << ": " << message;
}

TEST(Config, BadValuesNameTheirOption) {
    const BadValue cases[] = {
        // Pool: host bits, malformed, too short, containing cgnd's addresses, overlapping the
        // inside prefix, too many addresses.
        {"pool", "198.51.100.1/28"},
        {"pool", "198.51.100.0"},
        {"pool", "198.51.100.0/33"},
        {"pool", "10.0.0.0/7"},
        {"pool", "192.0.2.0/28"},  // holds --outside-address 192.0.2.1
        {"pool", "192.0.2.0/24"},
        {"pool", "100.64.0.0/28"},   // holds --inside-address 100.64.0.1
        {"pool", "100.100.0.0/28"},  // inside the inside prefix
        {"pool", "198.51.0.0/16"},   // 65536 addresses
        // Port range: inverted, too small, zero, malformed.
        {"port-range", "2000-1999"},
        {"port-range", "65535-1024"},
        {"port-range", "1024-1086"},  // 63 ports
        {"port-range", "0-100"},
        {"port-range", "0-65535"},
        {"port-range", "1024-65536"},
        {"port-range", "1024"},
        {"port-range", "1024-"},
        {"port-range", "-1024"},
        {"port-range", "a-b"},
        {"port-range", "1024--2000"},
        // Filtering: typos and case.
        {"filtering", "endpoint-independant"},
        {"filtering", "Endpoint-Independent"},
        {"filtering", "address"},
        {"filtering", ""},
        // Gateways off-link or equal to our own address.
        {"outside-gateway", "203.0.113.1"},
        {"outside-gateway", "192.0.2.1"},
        {"outside-gateway", "192.0.2"},
        {"inside-gateway", "10.0.0.1"},
        {"inside-gateway", "100.64.0.1"},
        {"inside-gateway", "100.128.0.1"},
        // Devices.
        {"inside-port", "eth0"},
        {"inside-port", "net_"},
        {"inside-port", "0000:03:00"},
        {"inside-port", "03:00.8"},
        {"inside-port", ""},
        {"outside-port", "veth0"},
        {"outside-port", "net_ring0"},  // the same device as --inside-port
        {"outside-port", "net_ring0,nodeaction=x"},
        // Interface addresses.
        {"inside-address", "100.64.0.1"},
        {"inside-address", "100.64.0.0/10"},       // network address
        {"inside-address", "100.127.255.255/10"},  // broadcast address
        {"inside-address", "100.64.0.1/31"},
        {"inside-address", "100.64.0.1/0"},
        {"inside-address", "100.64.0.256/10"},
        {"outside-address", "192.0.2.1/33"},
        {"outside-address", "100.64.0.2/24"},  // overlaps the inside prefix
        // Timeouts: zero, negative, units, too large.
        {"timeout-udp", "0"},
        {"timeout-udp", "-5"},
        {"timeout-udp", "10s"},
        {"timeout-udp", ""},
        {"timeout-tcp-established", "0"},
        {"timeout-tcp-established", "604801"},
        {"timeout-tcp-opening", "0"},
        {"timeout-tcp-opening", "86401"},
        {"timeout-tcp-opening", "4m"},
        {"timeout-tcp-transitory", "0"},
        {"timeout-tcp-transitory", "86401"},
        {"timeout-icmp", "0"},
        {"timeout-icmp", "1e3"},
        // Sizes.
        {"max-sessions", "15"},
        {"max-sessions", "abc"},
        {"max-sessions", "67108865"},
        {"mbufs", "1022"},
        {"icmp-error-rate", "1000001"},
        // Lcores: the main lcore as a worker, several workers (one in this version), junk.
        {"worker-lcores", "0"},
        {"worker-lcores", "1,1"},
        {"worker-lcores", "x"},
        {"worker-lcores", ""},
        {"worker-lcores", "1024"},
        {"main-lcore", "x"},
        {"main-lcore", "1"},  // the default worker lcore
    };
    for (const auto& c : cases) {
        expect_named(with(required_options(), c.option, c.value), c.named ? c.named : c.option,
                     std::string(c.option) + "=" + c.value);
    }
}

TEST(Config, OverlappingPoolsAreRefused) {
    auto args = to_args(required_options());  // pool 198.51.100.0/28
    args.insert(args.end(), {"--pool", "198.51.100.8/29"});
    auto message = error_of(args);
    EXPECT_NE(message.find("--pool"), std::string::npos) << message;

    args = to_args(required_options());
    args.insert(args.end(), {"--pool", "198.51.100.0/24"});
    message = error_of(args);
    EXPECT_NE(message.find("--pool"), std::string::npos) << message;

    args = to_args(required_options());
    args.insert(args.end(), {"--pool", "198.51.100.16/28"});  // adjacent: fine
    EXPECT_EQ(parse(args).config.pool.size(), 2u);
}

// cgnd answers ARP on the outside for every pool address: a pool holding the next hop would
// hijack the router's address.
TEST(Config, PoolHoldingTheOutsideGatewayIsRefused) {
    const auto options =
        with(with(required_options(), "outside-gateway", "192.0.2.254"), "pool", "192.0.2.240/28");
    const auto message = error_of(options);
    EXPECT_TRUE(message.find("--pool") != std::string::npos ||
                message.find("--outside-gateway") != std::string::npos)
        << message;
}

TEST(Config, PoolsUpTo4096AddressesInAll) {
    auto args = to_args(with(required_options(), "pool", "198.18.0.0/21"));  // 2048
    args.insert(args.end(), {"--pool", "198.18.8.0/21"});                    // 4096
    EXPECT_EQ(parse(args).config.pool.size(), 2u);
    args.insert(args.end(), {"--pool", "203.0.113.0/32"});  // 4097
    const auto message = error_of(args);
    EXPECT_NE(message.find("--pool"), std::string::npos) << message;
}

TEST(Config, AcceptedEdgeValues) {
    EXPECT_EQ(parse_config(with(required_options(), "port-range", "1-64")).port_range.size(), 64u);
    EXPECT_EQ(parse_config(with(required_options(), "port-range", "65472-65535")).port_range.first,
              65472);
    EXPECT_EQ(parse_config(with(required_options(), "timeout-udp", "1")).timeouts.udp_s, 1u);
    EXPECT_EQ(parse_config(with(required_options(), "max-sessions", "16")).max_sessions, 16u);
    // The pool may sit in the outside prefix as long as it does not hold cgnd's address.
    EXPECT_EQ(parse_config(with(required_options(), "pool", "192.0.2.16/28")).pool.size(), 1u);
    // PCI devices, short and long form.
    const Config pci = parse_config(
        with(with(required_options(), "inside-port", "0000:03:00.0"), "outside-port", "03:00.1"));
    EXPECT_EQ(pci.inside_port, "0000:03:00.0");
    EXPECT_EQ(pci.outside_port, "03:00.1");
}

// ---- Config file -----------------------------------------------------------------------------

TEST(Config, ReadsAConfigFile) {
    TempFile file(
        "# cgnd test configuration\n"
        "inside-port = net_af_packet0,iface=veth0\n"
        "outside-port = net_af_packet1,iface=veth1\n"
        "inside-address = 100.64.0.1/10\n"
        "outside-address = 192.0.2.1/24\n"
        "pool = 198.51.100.0/28\n"
        "pool = 203.0.113.0/29\n"
        "filtering = address-dependent\n"
        "timeout-udp = 120\n"
        "port-range = 10000-19999\n"
        "eal-args = --no-huge --no-pci\n");
    const auto out = parse(std::vector<std::string>{"cgnd", "--config", file.path()});
    const Config& c = out.config;
    EXPECT_EQ(out.action, Action::run);
    EXPECT_EQ(c.config_file, file.path());
    EXPECT_EQ(c.inside_port, "net_af_packet0,iface=veth0");
    EXPECT_EQ(c.outside_port, "net_af_packet1,iface=veth1");
    EXPECT_EQ(c.inside_address.to_string(), "100.64.0.1/10");
    ASSERT_EQ(c.pool.size(), 2u);
    EXPECT_EQ(c.pool[1].to_string(), "203.0.113.0/29");
    EXPECT_EQ(c.filtering, FilteringMode::address_dependent);
    EXPECT_EQ(c.timeouts.udp_s, 120u);
    EXPECT_EQ(c.timeouts.icmp_s, 60u);  // not in the file: default
    EXPECT_EQ(c.port_range.first, 10000);
    EXPECT_EQ(c.port_range.last, 19999);
    EXPECT_EQ(c.eal_args, (std::vector<std::string>{"--no-huge", "--no-pci"}));
}

TEST(Config, CommandLineOverridesTheFile) {
    TempFile file(
        "inside-port = net_ring0\n"
        "outside-port = net_ring1\n"
        "inside-address = 100.64.0.1/10\n"
        "outside-address = 192.0.2.1/24\n"
        "pool = 198.51.100.0/28\n"
        "filtering = address-dependent\n"
        "timeout-udp = 120\n");
    const Config c = parse(std::vector<std::string>{"cgnd", "-c", file.path(), "--filtering",
                                                    "address-and-port-dependent", "--timeout-udp",
                                                    "600", "--outside-port", "net_ring7"})
                         .config;
    EXPECT_EQ(c.filtering, FilteringMode::address_and_port_dependent);
    EXPECT_EQ(c.timeouts.udp_s, 600u);
    EXPECT_EQ(c.outside_port, "net_ring7");
    EXPECT_EQ(c.inside_port, "net_ring0");  // from the file
}

// `pool` may be repeated; the header promises that the command line wins over the file for
// every option, so a --pool on the command line replaces the file's pools rather than adding
// to them.
TEST(Config, CommandLinePoolReplacesTheFilePool) {
    TempFile file(
        "inside-port = net_ring0\n"
        "outside-port = net_ring1\n"
        "inside-address = 100.64.0.1/10\n"
        "outside-address = 192.0.2.1/24\n"
        "pool = 203.0.113.0/28\n");
    const Config c = parse(std::vector<std::string>{"cgnd", "--config", file.path(), "--pool",
                                                    "198.51.100.0/28"})
                         .config;
    ASSERT_EQ(c.pool.size(), 1u);
    EXPECT_EQ(c.pool[0].to_string(), "198.51.100.0/28");
}

TEST(Config, BadValueInTheFileNamesTheOption) {
    TempFile file(
        "inside-port = net_ring0\n"
        "outside-port = net_ring1\n"
        "inside-address = 100.64.0.1/10\n"
        "outside-address = 192.0.2.1/24\n"
        "pool = 198.51.100.0/28\n"
        "timeout-icmp = 0\n");
    const auto message = error_of(std::vector<std::string>{"cgnd", "--config", file.path()});
    EXPECT_NE(message.find("--timeout-icmp"), std::string::npos) << message;
}

TEST(Config, UnknownOptionInTheFileIsAnError) {
    TempFile file(
        "inside-port = net_ring0\n"
        "outside-port = net_ring1\n"
        "inside-address = 100.64.0.1/10\n"
        "outside-address = 192.0.2.1/24\n"
        "pool = 198.51.100.0/28\n"
        "filtring = address-dependent\n");
    const auto message = error_of(std::vector<std::string>{"cgnd", "--config", file.path()});
    EXPECT_NE(message.find("filtring"), std::string::npos) << message;
}

TEST(Config, UnreadableConfigFileIsAnError) {
    const auto missing = (std::filesystem::temp_directory_path() /
                          ("cgn-unit-missing-" + std::to_string(::getpid()) + ".conf"))
                             .string();
    const auto message = error_of(std::vector<std::string>{"cgnd", "--config", missing});
    EXPECT_NE(message.find("--config"), std::string::npos) << message;
    EXPECT_NE(message.find(missing), std::string::npos) << message;
}

// ---- Help and version ------------------------------------------------------------------------

TEST(Config, HelpNeedsNoOtherOption) {
    for (const char* flag : {"--help", "-h"}) {
        const auto out = parse(std::vector<std::string>{"cgnd", flag});
        EXPECT_EQ(out.action, Action::help);
        EXPECT_NE(out.help_text.find("--filtering"), std::string::npos);
        EXPECT_NE(out.help_text.find("--pool"), std::string::npos);
        EXPECT_NE(out.help_text.find("--port-range"), std::string::npos);
        EXPECT_NE(out.help_text.find("endpoint-independent"), std::string::npos);
    }
}

TEST(Config, Version) {
    EXPECT_EQ(parse(std::vector<std::string>{"cgnd", "--version"}).action, Action::version);
    EXPECT_EQ(parse(required_options()).action, Action::run);
}

// ---- EAL arguments ---------------------------------------------------------------------------

TEST(EalArguments, AddsLcoresAndVdevs) {
    const Config c = parse_config(required_options());
    EXPECT_EQ(eal_arguments(c, "cgnd"),
              (std::vector<std::string>{"cgnd", "-l", "0,1", "--main-lcore", "0", "--vdev",
                                        "net_ring0", "--vdev", "net_ring1"}));
}

TEST(EalArguments, UsesTheConfiguredLcores) {
    const Config c =
        parse_config(with(with(required_options(), "main-lcore", "4"), "worker-lcores", "6"));
    const auto args = eal_arguments(c, "cgnd");
    ASSERT_GE(args.size(), 5u);
    EXPECT_EQ(args[1], "-l");
    EXPECT_EQ(args[2], "4,6");
    EXPECT_EQ(args[3], "--main-lcore");
    EXPECT_EQ(args[4], "4");
}

TEST(EalArguments, KeepsTheUsersLcoreList) {
    for (const char* user :
         {"-l 2,3", "-l2-3", "--lcores 2,3", "--lcores=2@0,3@1", "-c 0xc", "-c0xc"}) {
        const Config c =
            parse_config(with(required_options(), "eal-args", std::string("--no-huge ") + user));
        ASSERT_EQ(c.eal_args.front(), "--no-huge");
        std::vector<std::string> expected{"cgnd"};
        expected.insert(expected.end(), c.eal_args.begin(), c.eal_args.end());
        expected.insert(expected.end(), {"--vdev", "net_ring0", "--vdev", "net_ring1"});
        EXPECT_EQ(eal_arguments(c, "cgnd"), expected) << user;
    }
}

TEST(EalArguments, KeepsOtherUserArgumentsAndAddsTheLcores) {
    const Config c =
        parse_config(with(required_options(), "eal-args", "--no-huge --log-level=lib.eal:debug"));
    EXPECT_EQ(eal_arguments(c, "/usr/bin/cgnd"),
              (std::vector<std::string>{"/usr/bin/cgnd", "-l", "0,1", "--main-lcore", "0",
                                        "--no-huge", "--log-level=lib.eal:debug", "--vdev",
                                        "net_ring0", "--vdev", "net_ring1"}));
}

TEST(EalArguments, PciDevicesAreAllowListed) {
    const Config c = parse_config(with(with(required_options(), "inside-port", "0000:03:00.0"),
                                       "outside-port", "net_af_packet0,iface=veth1"));
    const auto args = eal_arguments(c, "cgnd");
    ASSERT_GE(args.size(), 4u);
    EXPECT_EQ(
        std::vector<std::string>(args.end() - 4, args.end()),
        (std::vector<std::string>{"-a", "0000:03:00.0", "--vdev", "net_af_packet0,iface=veth1"}));
}

TEST(Devices, NameAndKind) {
    EXPECT_EQ(device_name("net_af_packet0,iface=veth0"), "net_af_packet0");
    EXPECT_EQ(device_name("net_ring0"), "net_ring0");
    EXPECT_EQ(device_name("0000:03:00.0"), "0000:03:00.0");
    EXPECT_TRUE(device_is_vdev("net_ring0"));
    EXPECT_TRUE(device_is_vdev("net_af_xdp0,iface=veth0"));
    EXPECT_FALSE(device_is_vdev("net_"));
    EXPECT_FALSE(device_is_vdev("net_,iface=veth0"));
    EXPECT_FALSE(device_is_vdev("0000:03:00.0"));
    EXPECT_FALSE(device_is_vdev("eth0"));
    EXPECT_FALSE(device_is_vdev(""));
}

}  // namespace
}  // namespace cgn::common

namespace cgn::common {
namespace {

TEST(StaticMappingConfig, ParsesFormatsAndRejects) {
    auto m = StaticMapping::parse("tcp 100.64.0.11:8080 198.51.100.1:80");
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->protocol, 6);
    EXPECT_EQ(m->internal_addr.to_string(), "100.64.0.11");
    EXPECT_EQ(m->internal_port, 8080);
    EXPECT_EQ(m->external_port, 80);
    EXPECT_EQ(m->to_string(), "tcp 100.64.0.11:8080 198.51.100.1:80");
    EXPECT_EQ(StaticMapping::parse("udp 100.64.0.11:1 198.51.100.1:65535")->protocol, 17);
    for (const char* bad :
         {"", "tcp", "icmp 100.64.0.11:1 198.51.100.1:1", "tcp 100.64.0.11 198.51.100.1:80",
          "tcp 100.64.0.11:0 198.51.100.1:80", "tcp 100.64.0.11:65536 198.51.100.1:80",
          "tcp 100.64.0.11:80 198.51.100.1:", "tcp 100.64.0.11:80 198.51.100.1:80 extra",
          "tcp 100.64.0.300:80 198.51.100.1:80", "tcp 100.64.0.11:8x 198.51.100.1:80"})
        EXPECT_FALSE(StaticMapping::parse(bad).has_value()) << bad;
}

TEST(StaticMappingConfig, RepeatedOptionCheckedAgainstPoolAndEachOther) {
    std::vector<std::string> args = to_args(required_options());
    args.insert(args.end(), {"--static-mapping", "tcp 100.64.0.11:8080 198.51.100.1:80",
                             "--static-mapping", "udp 100.64.0.11:8080 198.51.100.1:80"});
    const Config c = parse(args).config;
    ASSERT_EQ(c.static_mappings.size(), 2u);  // the same endpoints, one per protocol
    auto with_static = [](const char* text) {
        std::vector<std::string> a = to_args(required_options());
        a.insert(a.end(), {"--static-mapping", "tcp 100.64.0.11:8080 198.51.100.1:80",
                           "--static-mapping", text});
        return a;
    };
    for (const char* bad : {"tcp 100.64.0.12:8080 198.51.100.1:80",  // external taken
                            "tcp 100.64.0.11:8080 198.51.100.2:80",  // internal taken
                            "tcp 100.64.0.11:9 203.0.113.1:80",      // not in the pool
                            "tcp 198.51.100.5:9 198.51.100.2:80",    // internal in the pool
                            "tcp nonsense"})
        EXPECT_NE(error_of(with_static(bad)).find("--static-mapping"), std::string::npos) << bad;
}

TEST(StaticMappingConfig, OneToOneParsesAndPrints) {
    auto m = StaticMapping::parse("ip 100.64.0.12 198.51.100.9");
    ASSERT_TRUE(m.has_value());
    EXPECT_TRUE(m->one_to_one());
    EXPECT_EQ(m->protocol, StaticMapping::kOneToOne);
    EXPECT_EQ(m->internal_addr.to_string(), "100.64.0.12");
    EXPECT_EQ(m->external_addr.to_string(), "198.51.100.9");
    EXPECT_EQ(m->internal_port, 0);
    EXPECT_EQ(m->external_port, 0);
    EXPECT_EQ(m->to_string(), "ip 100.64.0.12 198.51.100.9");
    EXPECT_FALSE(StaticMapping::parse("tcp 100.64.0.12:1 198.51.100.9:1")->one_to_one());
    for (const char* bad : {"ip 100.64.0.12", "ip 100.64.0.12:80 198.51.100.9:80",
                            "ip 100.64.0.12 198.51.100.9 extra", "ip 100.64.0.12 nonsense",
                            "IP 100.64.0.12 198.51.100.9"})
        EXPECT_FALSE(StaticMapping::parse(bad).has_value()) << bad;
}

TEST(StaticMappingConfig, OneToOneTakesBothAddressesWhole) {
    auto with_statics = [](std::vector<std::string> texts) {
        std::vector<std::string> a = to_args(required_options());
        for (const auto& t : texts) a.insert(a.end(), {"--static-mapping", t});
        return a;
    };
    const Config c =
        parse(with_statics({"ip 100.64.0.12 198.51.100.9", "tcp 100.64.0.11:80 198.51.100.1:80"}))
            .config;
    ASSERT_EQ(c.static_mappings.size(), 2u);
    EXPECT_TRUE(c.static_mappings[0].one_to_one());
    // Either address in another mapping, of either kind, in either order, is refused and named.
    for (const auto& pair : std::vector<std::vector<std::string>>{
             {"ip 100.64.0.12 198.51.100.9", "tcp 100.64.0.12:80 198.51.100.1:80"},
             {"tcp 100.64.0.12:80 198.51.100.1:80", "ip 100.64.0.12 198.51.100.9"},
             {"ip 100.64.0.12 198.51.100.9", "udp 100.64.0.11:53 198.51.100.9:53"},
             {"ip 100.64.0.12 198.51.100.9", "ip 100.64.0.13 198.51.100.9"},
             {"ip 100.64.0.12 198.51.100.9", "ip 100.64.0.12 198.51.100.10"}}) {
        const std::string error = error_of(with_statics(pair));
        EXPECT_NE(error.find("--static-mapping"), std::string::npos) << pair[1];
        EXPECT_NE(error.find("mapped already"), std::string::npos) << error;
    }
    for (const char* bad : {"ip 100.64.0.12 203.0.113.1", "ip 198.51.100.3 198.51.100.9"})
        EXPECT_NE(error_of(with_statics({bad})).find("--static-mapping"), std::string::npos) << bad;
    // A deterministic subscriber has its range; its address cannot also be mapped whole.
    auto args = with_statics({"ip 100.64.0.12 198.51.100.9"});
    args.insert(args.end(), {"--deterministic", "100.64.0.0/24"});
    EXPECT_NE(error_of(args).find("outside --deterministic 100.64.0.0/24"), std::string::npos);
}

TEST(StaticMappingConfig, ControlSocketOption) {
    EXPECT_EQ(parse_config(required_options()).control_socket, "/run/cgnd.sock");
    Options o = required_options();
    o["control-socket"] = "/tmp/x.sock";
    EXPECT_EQ(parse_config(o).control_socket, "/tmp/x.sock");
    o["control-socket"] = std::string(101, 'a');
    EXPECT_NE(error_of(to_args(o)).find("--control-socket"), std::string::npos);
}

TEST(PoolCheck, RuntimeAdditionsFollowTheSameRules) {
    Options o = required_options();
    o["outside-gateway"] = "192.0.2.254";
    o["inside-address"] = "100.64.0.1/16";  // leaves the rest of 100.64.0.0/10 for a big pool
    const Config c = parse_config(o);
    auto refused = [&](const char* prefix) {
        try {
            check_pool_prefix(c, *Ipv4Prefix::parse(prefix));
        } catch (const ConfigError& e) {
            return std::string(e.what()).find("--pool") != std::string::npos;
        }
        return false;
    };
    EXPECT_FALSE(refused("203.0.113.0/28"));
    EXPECT_TRUE(refused("198.51.100.8/29"));  // overlaps the pool
    EXPECT_TRUE(refused("192.0.2.0/24"));     // holds cgnd's outside address
    EXPECT_TRUE(refused("192.0.2.252/30"));   // holds the gateway
    EXPECT_TRUE(refused("100.64.0.0/24"));    // inside prefix
    EXPECT_TRUE(refused("100.65.0.0/19"));    // 8192 addresses: over the limit
}

TEST(WorkerLcores, SeveralWorkersAccepted) {
    Options o = required_options();
    o["worker-lcores"] = "1,2,3";
    o["mbufs"] = "32767";
    EXPECT_EQ(parse_config(o).worker_lcores, (std::vector<unsigned>{1, 2, 3}));
}

// Block b of every address is worker b % workers': each worker needs a block of every
// address, and a subscriber's blocks are in its worker's share.
TEST(PortBlockSize, EachWorkerNeedsABlockOfEveryAddress) {
    Options o = required_options();
    o["worker-lcores"] = "1,2,3";
    o["mbufs"] = "32767";
    o["port-range"] = "1024-2047";
    o["port-block-size"] = "512";  // two blocks for three workers
    expect_named(o, "port-block-size", "two blocks for three workers");
    EXPECT_NE(error_of(o).find("at most 320 with 3 workers"), std::string::npos) << error_of(o);
    o["port-block-size"] = "320";
    o["max-blocks-per-subscriber"] = "2";  // each share has one block
    expect_named(o, "max-blocks-per-subscriber", "2");
    o.erase("max-blocks-per-subscriber");
    EXPECT_EQ(parse_config(o).limits.max_blocks, 1u);
}

// The pool must cover what the workers pin (RX and TX descriptors, handoff rings) and leave
// room for held fragments: the error names the minimum, and --help gives the same figures.
TEST(MbufOption, TooFewForTheWorkersNamesTheMinimum) {
    EXPECT_EQ(MbufBudget::minimum(1), 6528u);
    EXPECT_EQ(MbufBudget::minimum(2), 14336u);
    Options o = required_options();
    o["worker-lcores"] = "1,2,3";
    expect_named(o, "mbufs", "too few for 3 workers");
    EXPECT_NE(
        error_of(o).find("at least " + std::to_string(MbufBudget::minimum(3)) + " for 3 workers"),
        std::string::npos)
        << error_of(o);
    o["mbufs"] = std::to_string(MbufBudget::minimum(3));
    EXPECT_EQ(parse_config(o).mbufs, MbufBudget::minimum(3));
    o["worker-lcores"] = "1";
    o["mbufs"] = "6527";
    expect_named(o, "mbufs", "at least 6528 for 1 worker");
    // --help wraps its lines: compare with runs of blanks as one space.
    std::string help;
    for (char ch : parse(std::vector<std::string>{"cgnd", "--help"}).help_text) {
        const bool blank = ch == ' ' || ch == '\n';
        if (!blank || (!help.empty() && help.back() != ' ')) help += blank ? ' ' : ch;
    }
    EXPECT_NE(help.find("(6528 for one worker, 14336 for two)"), std::string::npos) << help;
}

// What is left after the fixed needs is halved and shared: the default pool with two workers
// leaves each worker (16383 - 13824) / 2 / 2 = 639 held fragments.
TEST(MbufOption, HeldFragmentsGetHalfOfWhatIsLeftPerWorker) {
    EXPECT_EQ(MbufBudget::fixed(2), 13824u);
    EXPECT_EQ(MbufBudget::held_per_worker(16383, 2), 639u);
    EXPECT_EQ(MbufBudget::held_per_worker(16383, 1), (16383u - 6272u) / 2);
    EXPECT_EQ(MbufBudget::held_per_worker(MbufBudget::minimum(4) - 1, 4), 0u);
    EXPECT_GE(MbufBudget::held_per_worker(MbufBudget::minimum(4), 4),
              MbufBudget::kMinHeldPerWorker);
}

}  // namespace
}  // namespace cgn::common

namespace cgn::common {
namespace {

TEST(ExemptDestinations, ParsedAndChecked) {
    std::vector<std::string> args = to_args(required_options());
    args.insert(args.end(), {"--exempt-destination", "203.0.113.53/32", "--exempt-destination",
                             "192.0.2.0/25"});
    EXPECT_EQ(parse(args).config.exempt_destinations.size(), 2u);
    EXPECT_TRUE(parse_config(required_options()).exempt_destinations.empty());
    for (const char* bad : {"198.51.100.0/29", "100.64.1.0/24", "203.0.113.53", "203.0.113.1/24"}) {
        std::vector<std::string> a = to_args(required_options());
        a.insert(a.end(), {"--exempt-destination", bad});
        EXPECT_NE(error_of(a).find("--exempt-destination"), std::string::npos) << bad;
    }
}

}  // namespace
}  // namespace cgn::common

namespace cgn::common {
namespace {

TEST(PortParityOption, OffByDefaultOnWhenGiven) {
    EXPECT_FALSE(parse_config(required_options()).port_parity);
    std::vector<std::string> args = to_args(required_options());
    args.push_back("--port-parity");
    EXPECT_TRUE(parse(args).config.port_parity);
}

}  // namespace
}  // namespace cgn::common

namespace cgn::common {
namespace {

// ---- Port blocks and per-subscriber limits (RFC 6888 REQ-4/5, REQ-8, REQ-13/14) --------------

TEST(PortBlockSizeOption, DefaultAcceptedAndRefusedValues) {
    EXPECT_EQ(parse_config(required_options()).port_block_size, 512u);
    for (uint32_t size : {64u, 128u, 1024u, 4096u})
        EXPECT_EQ(parse_config(with(required_options(), "port-block-size", std::to_string(size)))
                      .port_block_size,
                  size);
    for (const char* bad : {"100", "32", "8192", "0", "4160", "-64", "512x", ""})
        expect_named(with(required_options(), "port-block-size", bad), "port-block-size", bad);
}

TEST(PortBlockSizeOption, DefaultShrinksToASmallRangeAGivenSizeMustFit) {
    // 200 ports hold 3 whole blocks of 64: the default becomes 192.
    EXPECT_EQ(parse_config(with(required_options(), "port-range", "1-200")).port_block_size, 192u);
    EXPECT_EQ(parse_config(with(required_options(), "port-range", "1-64")).port_block_size, 64u);
    // 1024 ports: the default 512 already fits.
    EXPECT_EQ(parse_config(with(required_options(), "port-range", "1024-2047")).port_block_size,
              512u);
    const Options small = with(required_options(), "port-range", "1-200");
    EXPECT_EQ(parse_config(with(small, "port-block-size", "128")).port_block_size, 128u);
    expect_named(with(small, "port-block-size", "256"), "port-block-size", "256 over 200 ports");
}

TEST(BlockHoldDownOption, DefaultAndLimits) {
    EXPECT_EQ(parse_config(required_options()).block_hold_down_s, 120u);
    EXPECT_EQ(parse_config(with(required_options(), "block-hold-down", "0")).block_hold_down_s, 0u);
    EXPECT_EQ(parse_config(with(required_options(), "block-hold-down", "86400")).block_hold_down_s,
              86400u);
    for (const char* bad : {"86401", "-1", "2m", ""})
        expect_named(with(required_options(), "block-hold-down", bad), "block-hold-down", bad);
}

// RFC 7857 §2.1: an opening timeout of its own, beside the closing (transitory) one.
TEST(TcpOpeningTimeoutOption, DefaultRangeAndErrors) {
    EXPECT_EQ(parse_config(required_options()).timeouts.tcp_opening_s, 240u);
    EXPECT_EQ(
        parse_config(with(required_options(), "timeout-tcp-opening", "1")).timeouts.tcp_opening_s,
        1u);
    EXPECT_EQ(parse_config(with(required_options(), "timeout-tcp-opening", "86400"))
                  .timeouts.tcp_opening_s,
              86400u);
    // Independent of the closing timeout, both ways.
    const Config opening = parse_config(with(required_options(), "timeout-tcp-opening", "20"));
    EXPECT_EQ(opening.timeouts.tcp_opening_s, 20u);
    EXPECT_EQ(opening.timeouts.tcp_transitory_s, 240u);
    const Config closing = parse_config(with(required_options(), "timeout-tcp-transitory", "30"));
    EXPECT_EQ(closing.timeouts.tcp_opening_s, 240u);
    EXPECT_EQ(closing.timeouts.tcp_transitory_s, 30u);
    for (const char* bad : {"0", "86401", "-1", "4m", ""})
        expect_named(with(required_options(), "timeout-tcp-opening", bad), "timeout-tcp-opening",
                     bad);
    // In a config file too.
    TempFile file(
        "inside-port = net_ring0\n"
        "outside-port = net_ring1\n"
        "inside-address = 100.64.0.1/10\n"
        "outside-address = 192.0.2.1/24\n"
        "pool = 198.51.100.0/28\n"
        "timeout-tcp-opening = 45\n");
    EXPECT_EQ(parse(std::vector<std::string>{"cgnd", "--config", file.path()})
                  .config.timeouts.tcp_opening_s,
              45u);
    TempFile bad_file(
        "inside-port = net_ring0\n"
        "outside-port = net_ring1\n"
        "inside-address = 100.64.0.1/10\n"
        "outside-address = 192.0.2.1/24\n"
        "pool = 198.51.100.0/28\n"
        "timeout-tcp-opening = 0\n");
    const auto message = error_of(std::vector<std::string>{"cgnd", "--config", bad_file.path()});
    EXPECT_NE(message.find("--timeout-tcp-opening"), std::string::npos) << message;
    // --help names it with the RFC section.
    const auto help = parse(std::vector<std::string>{"cgnd", "--help"}).help_text;
    const auto at = help.find("--timeout-tcp-opening");
    ASSERT_NE(at, std::string::npos) << help;
    EXPECT_NE(help.find("RFC 7857", at), std::string::npos) << help;
}

TEST(MaxBlocksPerSubscriberOption, DefaultClampedToTheBlocksOfAnAddress) {
    EXPECT_EQ(parse_config(required_options()).limits.max_blocks, 8u);
    // 1024-2047 holds 2 blocks of 512; 1-200 one block of 192.
    EXPECT_EQ(parse_config(with(required_options(), "port-range", "1024-2047")).limits.max_blocks,
              2u);
    EXPECT_EQ(parse_config(with(required_options(), "port-range", "1-200")).limits.max_blocks, 1u);
    // 64512 / 512 = 126 blocks per address.
    EXPECT_EQ(parse_config(with(required_options(), "max-blocks-per-subscriber", "126"))
                  .limits.max_blocks,
              126u);
    EXPECT_EQ(
        parse_config(with(required_options(), "max-blocks-per-subscriber", "1")).limits.max_blocks,
        1u);
    for (const char* bad : {"127", "0", "x"})
        expect_named(with(required_options(), "max-blocks-per-subscriber", bad),
                     "max-blocks-per-subscriber", bad);
    expect_named(
        with(with(required_options(), "port-range", "1-200"), "max-blocks-per-subscriber", "2"),
        "max-blocks-per-subscriber", "2 blocks of a 1-block address");
}

TEST(SubscriberLimitOptions, DefaultsAreNoPerProtocolLimit) {
    const SubscriberLimits limits = parse_config(required_options()).limits;
    EXPECT_EQ(limits.max_sessions, 16384u);
    EXPECT_EQ(limits.new_sessions_per_second, 0u);
    EXPECT_EQ(limits.max_sessions_per_mapping, 0u);
    EXPECT_EQ(limits.max_inbound_sessions_per_mapping, 256u);
    for (size_t i = 0; i < kLimitProtocols; ++i) {
        EXPECT_EQ(limits.max_sessions_per_protocol[i], 0u) << i;
        EXPECT_EQ(limits.max_ports_per_protocol[i], 0u) << i;
        EXPECT_EQ(limits.new_sessions_per_second_per_protocol[i], 0u) << i;
    }
}

TEST(SubscriberLimitOptions, EachOptionLandsInItsProtocolsSlot) {
    Options o = required_options();
    o["max-sessions-per-subscriber"] = "100";
    o["max-sessions-per-subscriber-udp"] = "11";
    o["max-sessions-per-subscriber-tcp"] = "12";
    o["max-sessions-per-subscriber-icmp"] = "13";
    o["max-ports-per-subscriber-udp"] = "21";
    o["max-ports-per-subscriber-tcp"] = "22";
    o["max-ports-per-subscriber-icmp"] = "23";
    o["max-new-sessions-per-second"] = "30";
    o["max-new-sessions-per-second-udp"] = "31";
    o["max-new-sessions-per-second-tcp"] = "32";
    o["max-new-sessions-per-second-icmp"] = "33";
    o["max-sessions-per-mapping"] = "40";
    o["max-inbound-sessions-per-mapping"] = "41";
    const SubscriberLimits limits = parse_config(o).limits;
    EXPECT_EQ(limits.max_sessions, 100u);
    EXPECT_EQ(limits.max_sessions_per_mapping, 40u);
    EXPECT_EQ(limits.max_inbound_sessions_per_mapping, 41u);
    EXPECT_EQ(limits.new_sessions_per_second, 30u);
    // udp 0, tcp 1, icmp 2.
    for (size_t i = 0; i < kLimitProtocols; ++i) {
        const auto n = static_cast<uint32_t>(i + 1);
        EXPECT_EQ(limits.max_sessions_per_protocol[i], 10 + n) << i;
        EXPECT_EQ(limits.max_ports_per_protocol[i], 20 + n) << i;
        EXPECT_EQ(limits.new_sessions_per_second_per_protocol[i], 30 + n) << i;
    }
    // 0 switches the overall limit off.
    EXPECT_EQ(parse_config(with(required_options(), "max-sessions-per-subscriber", "0"))
                  .limits.max_sessions,
              0u);
}

TEST(SubscriberLimitOptions, OutOfRangeValuesNameTheirOption) {
    const BadValue cases[] = {
        {"max-sessions-per-subscriber", "67108865"},  // above 2^26
        {"max-sessions-per-subscriber", "-1"},
        {"max-sessions-per-subscriber-udp", "67108865"},
        {"max-sessions-per-subscriber-tcp", "x"},
        {"max-sessions-per-subscriber-icmp", ""},
        {"max-ports-per-subscriber-udp", "65537"},
        {"max-ports-per-subscriber-tcp", "1e3"},
        {"max-ports-per-subscriber-icmp", "70000"},
        {"max-new-sessions-per-second", "10000001"},
        {"max-new-sessions-per-second-udp", "10000001"},
        {"max-new-sessions-per-second-tcp", "-5"},
        {"max-new-sessions-per-second-icmp", "10000001"},
        {"max-sessions-per-mapping", "67108865"},
        {"max-sessions-per-mapping", "many"},
        {"max-inbound-sessions-per-mapping", "67108865"},
        {"max-inbound-sessions-per-mapping", "x"},
    };
    for (const auto& c : cases)
        expect_named(with(required_options(), c.option, c.value), c.option,
                     std::string(c.option) + "=" + c.value);
    // The upper edges are accepted.
    Options o = required_options();
    o["max-sessions-per-subscriber-icmp"] = "67108864";
    o["max-ports-per-subscriber-udp"] = "65536";
    o["max-new-sessions-per-second-tcp"] = "10000000";
    const SubscriberLimits limits = parse_config(o).limits;
    EXPECT_EQ(limits.max_sessions_per_protocol[2], 67108864u);
    EXPECT_EQ(limits.max_ports_per_protocol[0], 65536u);
    EXPECT_EQ(limits.new_sessions_per_second_per_protocol[1], 10000000u);
}

// ---- Deterministic NAT (RFC 7422) ------------------------------------------------------------

TEST(DeterministicOptions, OffByDefault) {
    const DeterministicConfig d = parse_config(required_options()).deterministic;
    EXPECT_FALSE(d.enabled());
    EXPECT_TRUE(d.subscribers.empty());
    EXPECT_EQ(d.ports_per_subscriber, 0u);
    EXPECT_FALSE(d.overflow);
}

TEST(DeterministicOptions, RepeatablePrefixesKeepTheirOrder) {
    // 1024 + 256 subscribers over the 16 addresses of the pool: 80 per address, 806 ports each.
    std::vector<std::string> args = to_args(required_options());
    args.insert(args.end(), {"--deterministic", "100.64.4.0/22", "--deterministic", "10.0.0.0/24",
                             "--deterministic-ports", "500", "--deterministic-overflow"});
    const DeterministicConfig d = parse(args).config.deterministic;
    ASSERT_EQ(d.subscribers.size(), 2u);
    EXPECT_EQ(d.subscribers[0].to_string(), "100.64.4.0/22");
    EXPECT_EQ(d.subscribers[1].to_string(), "10.0.0.0/24");
    EXPECT_TRUE(d.enabled());
    EXPECT_EQ(d.ports_per_subscriber, 500u);
    EXPECT_TRUE(d.overflow);
}

TEST(DeterministicOptions, BadPrefixesAreRefused) {
    for (const char* bad : {"198.51.100.0/29",   // inside the pool 198.51.100.0/28
                            "198.51.0.0/16",     // holding the pool
                            "100.64.0.1/24",     // host bits
                            "100.64.0.0",        // no length
                            "10.0.0.0/7",        // shorter than /8
                            "100.64.0.0/33"}) {  // malformed
        std::vector<std::string> args = to_args(required_options());
        args.insert(args.end(), {"--deterministic", bad});
        const auto message = error_of(args);
        EXPECT_NE(message.find("--deterministic"), std::string::npos) << bad << ": " << message;
    }
    for (const char* second : {"100.64.0.128/25", "100.64.0.0/16", "100.64.0.0/24"}) {
        std::vector<std::string> args = to_args(required_options());
        args.insert(args.end(), {"--deterministic", "100.64.0.0/24", "--deterministic", second});
        const auto message = error_of(args);
        EXPECT_NE(message.find("not overlapping --deterministic 100.64.0.0/24"), std::string::npos)
            << second << ": " << message;
    }
    // Adjacent prefixes are fine.
    std::vector<std::string> args = to_args(required_options());
    args.insert(args.end(),
                {"--deterministic", "100.64.0.0/24", "--deterministic", "100.64.1.0/24"});
    EXPECT_EQ(parse(args).config.deterministic.subscribers.size(), 2u);
}

TEST(DeterministicOptions, PortsBoundedByTheRangeAndThePool) {
    auto with_ports = [](const std::string& ports, const std::string& range) {
        std::vector<std::string> args = to_args(
            with(with(required_options(), "deterministic-ports", ports), "port-range", range));
        args.insert(args.end(), {"--deterministic", "100.64.0.0/24"});
        return args;
    };
    EXPECT_EQ(parse(with_ports("1000", "1024-65535")).config.deterministic.ports_per_subscriber,
              1000u);
    // 256 subscribers on 16 addresses need 16 per address: at most 1000 / 16 = 62 ports each in
    // a 1000-port range.
    EXPECT_EQ(parse(with_ports("62", "2000-2999")).config.deterministic.ports_per_subscriber, 62u);
    for (const auto& [ports, range] : std::vector<std::pair<std::string, std::string>>{
             {"63", "2000-2999"},  // 15 per address: 18 addresses needed
             {"1001", "2000-2999"},
             {"64513", "1024-65535"},
             {"x", "1024-65535"},
             {"-1", "1024-65535"}}) {
        const auto message = error_of(with_ports(ports, range));
        EXPECT_NE(message.find("--deterministic-ports"), std::string::npos)
            << ports << " over " << range << ": " << message;
    }
}

// ---- Link MTUs (RFC 4787 REQ-13/13a, RFC 5508 §7.1.1) -------------------------------------------

TEST(MtuOptions, DefaultsAcceptedAndRefusedValues) {
    const Config defaults = parse_config(required_options());
    EXPECT_EQ(defaults.inside_mtu, 1500u);
    EXPECT_EQ(defaults.outside_mtu, 1500u);
    for (const char* option : {"inside-mtu", "outside-mtu"}) {
        for (const char* good : {"576", "1280", "9000"}) {
            const Config c = parse_config(with(required_options(), option, good));
            EXPECT_EQ(std::string(option) == "inside-mtu" ? c.inside_mtu : c.outside_mtu,
                      std::stoul(good));
            // The other side keeps its default.
            EXPECT_EQ(std::string(option) == "inside-mtu" ? c.outside_mtu : c.inside_mtu, 1500u);
        }
        for (const char* bad : {"575", "9001", "0", "-1500", "1500b", ""})
            expect_named(with(required_options(), option, bad), option, bad);
    }
    TempFile file(
        "inside-port = net_ring0\n"
        "outside-port = net_ring1\n"
        "inside-address = 100.64.0.1/10\n"
        "outside-address = 192.0.2.1/24\n"
        "pool = 198.51.100.0/28\n"
        "outside-mtu = 1280\n"
        "inside-mtu = 9000\n");
    const Config from_file =
        parse(std::vector<std::string>{"cgnd", "--config", file.path()}).config;
    EXPECT_EQ(from_file.outside_mtu, 1280u);
    EXPECT_EQ(from_file.inside_mtu, 9000u);
    // --help names the RFCs.
    const auto help = parse(std::vector<std::string>{"cgnd", "--help"}).help_text;
    const auto at = help.find("--inside-mtu");
    ASSERT_NE(at, std::string::npos) << help;
    EXPECT_NE(help.find("RFC 4787", at), std::string::npos) << help;
    EXPECT_NE(help.find("RFC 5508", at), std::string::npos) << help;
    EXPECT_NE(help.find("--outside-mtu"), std::string::npos) << help;
}

}  // namespace
}  // namespace cgn::common

namespace cgn::common {
namespace {

// PCP (docs/pcp.md): on by default at the inside address, every inside source may ask, the
// suggestable ports are the NAT's; each bad value is named.
TEST(PcpOptions, DefaultsServeTheInsideAddress) {
    const Config c = parse_config(required_options());
    EXPECT_TRUE(c.pcp.enabled);
    EXPECT_TRUE(c.pcp.servers.empty());
    EXPECT_TRUE(c.pcp.store.empty());
    ASSERT_EQ(c.pcp.subscribers.size(), 1u);
    EXPECT_EQ(c.pcp.subscribers[0].length, 0u);
    EXPECT_TRUE(c.pcp.third_party.empty());
    EXPECT_EQ(c.pcp.min_lifetime_s, 120u);
    EXPECT_EQ(c.pcp.max_lifetime_s, 86400u);
    EXPECT_EQ(c.pcp.suggestable_ports.first, c.port_range.first);
    EXPECT_EQ(c.pcp.suggestable_ports.last, c.port_range.last);
}

void expect_pcp_error(const Options& o, const std::string& option, const std::string& text) {
    expect_named(o, option, text);
    EXPECT_NE(error_of(o).find(text), std::string::npos) << error_of(o);
}

TEST(PcpOptions, BadValuesAreNamed) {
    Options o = required_options();
    o["pcp-server"] = "192.0.2.99";  // not on the inside subnet
    expect_pcp_error(o, "pcp-server", "a host address of the inside subnet");
    o["pcp-server"] = "off";
    EXPECT_FALSE(parse_config(o).pcp.enabled);
    o.erase("pcp-server");
    o["pcp-ports"] = "1-2000";
    expect_pcp_error(o, "pcp-ports", "a range within --port-range");
    o["pcp-ports"] = "5000-6000";
    EXPECT_EQ(parse_config(o).pcp.suggestable_ports.first, 5000u);
    o["pcp-min-lifetime"] = "600";
    o["pcp-max-lifetime"] = "300";
    expect_pcp_error(o, "pcp-max-lifetime", "a whole number from 600");
    o["pcp-max-lifetime"] = "3600";
    o["pcp-third-party"] = "100.64.0.5/24";  // host bits set
    expect_pcp_error(o, "pcp-third-party", "an IPv4 prefix with zero host bits");
    o["pcp-third-party"] = "100.64.0.0/24";
    const Config c = parse_config(o);
    ASSERT_EQ(c.pcp.third_party.size(), 1u);
    EXPECT_EQ(c.pcp.max_lifetime_s, 3600u);
}

}  // namespace
}  // namespace cgn::common
