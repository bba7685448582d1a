// cgnd's command-line and config-file options: their names, defaults and help text, in the
// groups --help prints. Reading and checking the values is config.cpp's.
#include "common/config_options.hpp"

namespace po = boost::program_options;

namespace cgn::common {

namespace {

constexpr unsigned kWidth = 100;

// General options: help, version, config file.
po::options_description general_options() {
    po::options_description options("General", kWidth);
    options.add_options()("help,h", "print this help and exit")("version",
                                                                "print the version and exit")(
        "config,c", po::value<std::string>()->value_name("FILE"),
        "read options from FILE (one 'name = value' per line, '#' comments); options on the "
        "command line override it");
    return options;
}

// DPDK: EAL arguments, lcores, packet buffers.
po::options_description dpdk_options() {
    po::options_description options("DPDK", kWidth);
    options.add_options()(
        "eal-args", po::value<std::string>()->value_name("ARGS")->default_value(""),
        "extra EAL arguments, space separated, e.g. \"--no-huge --no-pci -m 512 --no-shconf\" (no "
        "hugepages). "
        "cgnd adds the lcore list (unless ARGS has -l/--lcores/-c) and one device argument per "
        "port (-a for PCI, --vdev for virtual devices)")(
        "main-lcore", po::value<unsigned>()->value_name("ID")->default_value(0),
        "lcore of the control thread")(
        "worker-lcores", po::value<std::string>()->value_name("LIST")->default_value("1"),
        "lcores that run packet workers, comma separated: one worker each. Each port gets one RX "
        "and one TX queue per worker (for net_af_packet give qpairs=N in the device string)")(
        "mbufs", po::value<std::string>()->value_name("N")->default_value("16383"),
        "packet buffers in the pool shared by the ports. Each worker pins 2 x 1024 RX and "
        "2 x 1024 TX descriptors' worth, each pair of workers a 1024-entry handoff ring; of what "
        "is left, half is for held fragments (split between the workers) and half for packets "
        "in flight. Too few for the workers is an error naming the minimum (6528 for one "
        "worker, 14336 for two)");
    return options;
}

// Interfaces: ports, addresses, gateways, MTUs.
po::options_description interface_options() {
    po::options_description options("Interfaces", kWidth);
    options.add_options()(
        "inside-port", po::value<std::string>()->value_name("DEV"),
        "subscriber-facing port: a PCI address (0000:03:00.0) or a vdev "
        "(net_af_packet0,iface=veth0; net_af_xdp0,iface=veth0; net_ring0; net_memif0,...)")(
        "outside-port", po::value<std::string>()->value_name("DEV"),
        "Internet-facing port, given like --inside-port")(
        "outside-flow-rules", po::value<std::string>()->value_name("MODE")->default_value("auto"),
        "with several workers, rte_flow rules on the outside port put each packet on the queue "
        "of the worker that owns its destination port's block (UDP and TCP by port, ICMP echo "
        "replies by identifier), so that no worker hands on another's share: auto (where the "
        "device takes them; otherwise RSS and the handoff rings do that, and the start-up line "
        "says why), require (an error at start where the device refuses them), off. Needs a "
        "restart")(
        "inside-address", po::value<std::string>()->value_name("A/LEN"),
        "cgnd's address and on-link prefix on the inside, e.g. 100.64.0.1/10; subscribers in "
        "the prefix are reached directly")(
        "outside-address", po::value<std::string>()->value_name("A/LEN"),
        "cgnd's address and on-link prefix on the outside, e.g. 192.0.2.1/24")(
        "inside-gateway", po::value<std::string>()->value_name("A"),
        "next hop for subscriber addresses outside the inside prefix (optional)")(
        "outside-gateway", po::value<std::string>()->value_name("A"),
        "next hop for destinations outside the outside prefix (optional; without it only "
        "on-link destinations are reached)")(
        "inside-mtu", po::value<std::string>()->value_name("N")->default_value("1500"),
        "IP MTU of the inside link, 576 to 9000 bytes: cgnd sets it on the port where the "
        "device lets it, and never sends a longer packet there. A longer packet with DF set "
        "is dropped and its sender gets ICMP fragmentation needed with this MTU (RFC 4787 "
        "REQ-13, RFC 5508 §7.1.1, RFC 1191); one without DF is fragmented (RFC 4787 REQ-13a). "
        "Needs a restart")("outside-mtu",
                           po::value<std::string>()->value_name("N")->default_value("1500"),
                           "IP MTU of the outside link, the same way");
    return options;
}

// Control: the management socket.
po::options_description control_options() {
    po::options_description options("Control", kWidth);
    options.add_options()(
        "control-socket",
        po::value<std::string>()->value_name("PATH")->default_value("/run/cgnd.sock"),
        "unix socket for live commands (one per connection, answered with one reply): 'help', "
        "'show counters', 'show config', 'set timeout "
        "udp|tcp-established|tcp-opening|tcp-transitory|icmp S', 'set filtering MODE', 'pool "
        "add PREFIX', 'static add PROTO INT:PORT EXT:PORT', 'static del PROTO INT:PORT', "
        "'static list'. SIGHUP re-reads --config and applies what changed the same way");
    return options;
}

// Translation: pool, ports, filtering, timeouts, table sizes, static mappings, blocks.
void add_translation_options(po::options_description& nat) {
    nat.add_options()(
        "pool", po::value<std::vector<std::string>>()->value_name("PREFIX"),
        "external address pool prefix, e.g. 198.51.100.0/28; repeat for several (at most 4096 "
        "addresses in all); cgnd answers ARP for these on the outside")(
        "port-range",
        po::value<std::string>()->value_name("FIRST-LAST")->default_value("1024-65535"),
        "external ports handed out; ports below 1024 are used only if FIRST is below 1024")(
        "filtering",
        po::value<std::string>()->value_name("MODE")->default_value("endpoint-independent"),
        "inbound filtering (RFC 4787 REQ-8): endpoint-independent, address-dependent or "
        "address-and-port-dependent")(
        "timeout-udp", po::value<std::string>()->value_name("S")->default_value("300"),
        "UDP session idle timeout in seconds (RFC 4787 REQ-5)")(
        "timeout-tcp-established", po::value<std::string>()->value_name("S")->default_value("7440"),
        "established TCP session idle timeout in seconds (RFC 5382 REQ-5)")(
        "timeout-tcp-opening", po::value<std::string>()->value_name("S")->default_value("240"),
        "TCP idle timeout in seconds while a connection opens (SYN from one side only; RFC 7857 "
        "§2.1 asks for separate opening and closing timeouts; 1 to 86400)")(
        "timeout-tcp-transitory", po::value<std::string>()->value_name("S")->default_value("240"),
        "TCP closing idle timeout in seconds: after FINs from both sides or an RST (RFC 5382 "
        "REQ-5, RFC 7857 §2.1 and §2.2)")(
        "timeout-icmp", po::value<std::string>()->value_name("S")->default_value("60"),
        "ICMP query idle timeout in seconds (RFC 5508 REQ-1)")(
        "max-sessions", po::value<std::string>()->value_name("N")->default_value("1048576"),
        "sessions per worker. Memory is reserved at start: 383 bytes a session, 263 of them "
        "from EAL memory (hugepages; -m with --no-huge) and 120 from the process heap, i.e. "
        "263 MiB of EAL memory per worker for 1M (measured by cgn-session-memory)")(
        "icmp-error-rate", po::value<std::string>()->value_name("N")->default_value("1000"),
        "ICMP errors a worker sends per second at most (time exceeded, host unreachable for a "
        "quota, fragmentation needed), 0 for none")(
        "static-mapping", po::value<std::vector<std::string>>()->value_name("MAPPING"),
        "static port mapping \"PROTO INTERNAL:PORT EXTERNAL:PORT\", e.g. \"tcp 100.64.0.11:80 "
        "198.51.100.1:8080\": inbound traffic to the external endpoint reaches the internal one "
        "(no filtering), and the internal endpoint's outbound traffic uses it; repeat for "
        "several. An external port outside --port-range is never used dynamically. \"ip "
        "100.64.0.11 198.51.100.9\" maps the whole address one-to-one (every protocol and "
        "port, ICMP echo included, ports unchanged; the external address is then used for "
        "nothing else)")(
        "port-parity", po::bool_switch(),
        "give an internal port an external port of the same parity when one is free (RFC 4787 "
        "REQ-4; RTP on an even port keeps RTCP on the next odd one possible)")(
        "port-block-size", po::value<std::string>()->value_name("N")->default_value("512"),
        "ports per port block (RFC 6888 REQ-13/14): 64 to 4096, a multiple of 64. A subscriber "
        "gets one block of its paired pool address with its first mapping and more as it needs "
        "them; the logs then need one event per block, not per session")(
        "block-hold-down", po::value<std::string>()->value_name("S")->default_value("120"),
        "seconds a block stays with its subscriber after its last mapping ended before it "
        "returns to the pool (RFC 6888 REQ-8), 0 to 86400");
}

// Subscriber limits (RFC 6888 REQ-4/5/11).
void add_limit_options(po::options_description& nat) {
    nat.add_options()(
        "max-blocks-per-subscriber", po::value<std::string>()->value_name("N")->default_value("8"),
        "port blocks a subscriber may hold at once (hence its external ports per protocol)")(
        "max-sessions-per-subscriber",
        po::value<std::string>()->value_name("N")->default_value("16384"),
        "sessions a subscriber may have at once, all protocols (0: no limit; RFC 6888 REQ-4)")(
        "max-sessions-per-subscriber-udp", po::value<std::string>()->value_name("N"),
        "the same for UDP only (default: no separate limit)")(
        "max-sessions-per-subscriber-tcp", po::value<std::string>()->value_name("N"),
        "the same for TCP only")("max-sessions-per-subscriber-icmp",
                                 po::value<std::string>()->value_name("N"),
                                 "the same for ICMP queries only")(
        "max-ports-per-subscriber-udp", po::value<std::string>()->value_name("N"),
        "external UDP ports (mappings) a subscriber may hold at once (default: what its blocks "
        "give)")("max-ports-per-subscriber-tcp", po::value<std::string>()->value_name("N"),
                 "the same for TCP")("max-ports-per-subscriber-icmp",
                                     po::value<std::string>()->value_name("N"),
                                     "the same for ICMP query identifiers")(
        "max-sessions-per-mapping", po::value<std::string>()->value_name("N")->default_value("0"),
        "sessions one mapping (one internal address and port) may have, i.e. remote endpoints "
        "one socket talks to at once (0: no limit; RFC 6888 REQ-5 state per mapping)")(
        "max-inbound-sessions-per-mapping",
        po::value<std::string>()->value_name("N")->default_value("256"),
        "sessions that packets from outside may open on one mapping (new remote endpoints the "
        "filtering lets in before the subscriber answers them). They count here instead of "
        "against the subscriber's session limits and new-session rate, so that a remote host "
        "spraying a mapped port from many ports cannot lock the subscriber out (0: no limit)")(
        "max-new-sessions-per-second",
        po::value<std::string>()->value_name("N")->default_value("0"),
        "new sessions a subscriber may open per second, all protocols (0: no limit; bursts of "
        "up to one second's worth are allowed)")("max-new-sessions-per-second-udp",
                                                 po::value<std::string>()->value_name("N"),
                                                 "the same for UDP only")(
        "max-new-sessions-per-second-tcp", po::value<std::string>()->value_name("N"),
        "the same for TCP only")(
        "max-new-sessions-per-second-icmp", po::value<std::string>()->value_name("N"),
        "the same for ICMP queries only. At any limit the packet is dropped and counted, the "
        "subscriber gets ICMP destination unreachable (host unreachable, RFC 6888 REQ-11) at "
        "the --icmp-error-rate, and a quota event is logged; no existing mapping is evicted");
}

// Deterministic NAT (RFC 7422), lookups and exempt destinations.
void add_deterministic_options(po::options_description& nat) {
    nat.add_options()(
        "deterministic", po::value<std::vector<std::string>>()->value_name("PREFIX"),
        "deterministic NAT (RFC 7422) for the subscribers of PREFIX (repeat for several): each "
        "gets by formula one pool address and a fixed port range, so logs are not needed to "
        "find who used an external port (cgnd --lookup answers it from the config)")(
        "deterministic-ports", po::value<std::string>()->value_name("N")->default_value("0"),
        "ports of each deterministic subscriber's range (0: the port range shared evenly)")(
        "deterministic-overflow", po::bool_switch(),
        "let a deterministic subscriber whose range is full take dynamic port blocks (logged "
        "as block events like any other)")(
        "lookup", po::value<std::string>()->value_name("QUERY"),
        "answer from the configuration, without starting: a subscriber address (\"100.64.0.5\": "
        "its deterministic address and ports) or an external endpoint (\"198.51.100.2:40123\": "
        "the deterministic subscriber or static mapping that owns it), then exit")(
        "deterministic-table", po::bool_switch(),
        "print every deterministic subscriber's address and port range, then exit (keep it "
        "with the configuration: it answers who used which port)")(
        "exempt-destination", po::value<std::vector<std::string>>()->value_name("PREFIX"),
        "destination prefix reached without translation (RFC 6888 REQ-6), e.g. the ISP's own "
        "DNS servers: subscribers' packets to it leave with their own source address, and its "
        "packets to subscribers come back in untranslated; repeat for several (at most 64)");
}

// The PCP server (RFC 6887) and NAT-PMP (RFC 6886), served by the control thread.
po::options_description pcp_options() {
    po::options_description options("PCP and NAT-PMP", kWidth);
    options.add_options()(
        "pcp-server", po::value<std::vector<std::string>>()->value_name("ADDRESS|off"),
        "an address the PCP server answers at, UDP port 5351 on the inside (default: "
        "--inside-address); repeat for several (at most 4, one server: one state and one "
        "epoch, RFC 7488 section 3), each a host of the inside subnet that cgnd then also "
        "answers ARP for; 'off': no PCP or NAT-PMP service (requests dropped as for cgnd)")(
        "pcp-store", po::value<std::string>()->value_name("DIR"),
        "keep the PCP mappings in an LMDB database in DIR (created if missing), so that they and "
        "the epoch survive a restart, kill -9 included: an answer is sent only once its mapping "
        "is on disk; the static mappings added on the control socket ('static add') are kept "
        "there too. Default: not kept (a restart loses them; clients see the epoch reset and "
        "ask again)")(
        "pcp-subscribers", po::value<std::vector<std::string>>()->value_name("PREFIX"),
        "sources on the inside that may use PCP and NAT-PMP (RFC 6887 section 18); others are "
        "dropped and counted; repeat for several. Default: every inside source")(
        "pcp-third-party", po::value<std::vector<std::string>>()->value_name("PREFIX"),
        "sources allowed the THIRD_PARTY option (operator systems mapping for a subscriber, RFC "
        "6887 section 13.1); anyone else gets NOT_AUTHORIZED. Default: none; repeat for several")(
        "pcp-min-lifetime", po::value<std::string>()->value_name("S")->default_value("120"),
        "shortest mapping lifetime granted; a shorter request gets this (RFC 6887 section 15)")(
        "pcp-max-lifetime", po::value<std::string>()->value_name("S")->default_value("86400"),
        "longest mapping lifetime granted; a longer request gets this")(
        "pcp-max-mappings", po::value<std::string>()->value_name("N")->default_value("64"),
        "explicit (PCP and NAT-PMP) mappings per subscriber; beyond, USER_EX_QUOTA. They also "
        "count against the subscriber's port and block limits")(
        "pcp-request-rate", po::value<std::string>()->value_name("N")->default_value("10"),
        "requests per second per subscriber; the excess is dropped and counted before any work")(
        "pcp-request-burst", po::value<std::string>()->value_name("N")->default_value("20"),
        "requests a subscriber may send at once above the rate")(
        "pcp-ports", po::value<std::string>()->value_name("FIRST-LAST"),
        "external ports a client may suggest (within --port-range; default all of it); a "
        "suggestion outside is treated as none");
    return options;
}

}  // namespace

po::options_description describe() {
    po::options_description nat("NAT", kWidth);
    add_translation_options(nat);
    add_limit_options(nat);
    add_deterministic_options(nat);
    po::options_description all("cgnd options", kWidth);
    all.add(general_options())
        .add(dpdk_options())
        .add(interface_options())
        .add(nat)
        .add(control_options())
        .add(pcp_options());
    return all;
}

}  // namespace cgn::common
