// cgnd: the carrier-grade NAT daemon. Reads and validates its configuration (before touching
// any port), initialises DPDK, starts the ports and the worker, then the main lcore becomes the
// control thread: it prints counters on SIGUSR1 and stops everything cleanly on SIGINT/SIGTERM.

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ether.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/config.hpp"
#include "common/counters.hpp"
#include "common/deterministic.hpp"
#include "common/events.hpp"
#include "common/mbuf_budget.hpp"
#include "control/control_socket.hpp"
#include "control/controller.hpp"
#include "control/pcp_daemon.hpp"
#include "dataplane/io/control_channel.hpp"
#include "dataplane/io/flow_rules.hpp"
#include "dataplane/io/handoff.hpp"
#include "dataplane/io/port.hpp"
#include "dataplane/io/tsc_clock.hpp"
#include "dataplane/io/worker.hpp"

namespace {

using namespace cgn;

// Set by the signal handlers, read by the control loop (lock-free atomics are signal-safe).
std::atomic<bool> g_stop_requested{false};
std::atomic<bool> g_print_requested{false};
std::atomic<bool> g_reload_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void on_stop_signal(int) { g_stop_requested.store(true); }
extern "C" void on_print_signal(int) { g_print_requested.store(true); }
extern "C" void on_reload_signal(int) { g_reload_requested.store(true); }

void install_signal_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sa.sa_handler = on_print_signal;
    sigaction(SIGUSR1, &sa, nullptr);
    sa.sa_handler = on_reload_signal;
    sigaction(SIGHUP, &sa, nullptr);
}

struct WorkerLaunch {
    dp::Worker* worker;
    const std::atomic<bool>* stop;
};

int worker_main(void* arg) {
    auto* launch = static_cast<WorkerLaunch*>(arg);
    launch->worker->run(*launch->stop);
    return 0;
}

// The workers' counters summed, and the PCP service's (when it runs) in the same block.
std::string counters_text(const std::vector<std::unique_ptr<common::WorkerCounters>>& counters,
                          const ctl::PcpDaemon* pcp) {
    std::vector<const common::WorkerCounters*> all;
    for (const auto& c : counters) all.push_back(c.get());
    std::string text = common::format_counters(common::sum_counters(all));
    if (pcp != nullptr) {
        const std::string end = "--- end counters ---\n";
        text.insert(text.size() - end.size(), pcp->counter_lines());
    }
    return text;
}

void print(const std::string& text) {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
}

void check_worker_lcores(const common::Config& config) {
    for (unsigned lcore : config.worker_lcores)
        if (!rte_lcore_is_enabled(lcore))
            throw std::runtime_error("--worker-lcores: lcore " + std::to_string(lcore) +
                                     " is not enabled in the EAL lcore list");
}

rte_mempool* create_mbuf_pool(const common::Config& config, int socket) {
    // One mbuf holds a whole frame of either link (VLAN tag included): the default size up to
    // an MTU of about 2000, more for jumbo frames.
    const uint32_t largest_frame =
        std::max(config.inside_mtu, config.outside_mtu) + RTE_ETHER_HDR_LEN + RTE_VLAN_HLEN;
    const auto data_room = static_cast<uint16_t>(
        std::max<uint32_t>(RTE_MBUF_DEFAULT_BUF_SIZE, RTE_PKTMBUF_HEADROOM + largest_frame));
    rte_mempool* pool = rte_pktmbuf_pool_create("cgn_mbufs", config.mbufs,
                                                common::MbufBudget::kCache, 0, data_room, socket);
    if (pool == nullptr)
        throw std::runtime_error(std::string("cannot create the mbuf pool (--mbufs ") +
                                 std::to_string(config.mbufs) + "): " + rte_strerror(rte_errno));
    return pool;
}

void warn_device_mtu(const common::Config& config, const dp::PortSteering& rss,
                     const dp::PortSteering& outside_setup) {
    // RFC 4787 REQ-13/13a: the device's MTU is only the first line; the workers check every
    // packet they send against cgnd's own, so a device that refuses changes nothing there.
    for (const auto& [option, mtu, error] :
         {std::tuple{"inside-mtu", config.inside_mtu, rss.mtu_error},
          std::tuple{"outside-mtu", config.outside_mtu, outside_setup.mtu_error}})
        if (error != 0)
            std::fprintf(stderr,
                         "cgnd: warning: --%s %u: the device keeps its own MTU (%s); cgnd sends "
                         "no packet longer than %u bytes there all the same\n",
                         option, mtu, rte_strerror(-error), mtu);
}

void reserve_deterministic_blocks(const common::DeterministicMap& deterministic,
                                  dp::BlockMap& blocks) {
    for (uint32_t i = 0; i < deterministic.addresses_used(); ++i)
        for (uint32_t b = 0; b < deterministic.first_dynamic_block(i); ++b) blocks.reserve(i, b);
}

// The settings every worker shares; run() fills in each one's index, queues and event ring.
dp::WorkerSettings worker_settings(const common::Config& config, dp::ControlChannel& channel,
                                   dp::HandoffRings* handoff, dp::BlockMap& blocks,
                                   const common::DeterministicMap& deterministic, uint16_t inside,
                                   uint16_t outside, int socket) {
    const auto workers = static_cast<unsigned>(config.worker_lcores.size());
    dp::WorkerSettings ws;
    ws.socket_id = socket;
    ws.control = &channel;
    ws.nat.explicit_mappings = &channel.explicit_mappings();
    ws.workers = workers;
    ws.handoff = handoff;
    ws.inside = {inside, 0, 0, dp::port_mac(inside), config.inside_address, config.inside_gateway};
    ws.outside = {
        outside, 0, 0, dp::port_mac(outside), config.outside_address, config.outside_gateway};
    ws.inside.mtu = config.inside_mtu;
    ws.outside.mtu = config.outside_mtu;
    ws.nat.pool = config.pool;
    ws.nat.port_range = config.port_range;
    ws.nat.filtering = config.filtering;
    ws.nat.timeouts = config.timeouts;
    ws.nat.max_sessions = config.max_sessions;
    ws.nat.port_parity = config.port_parity;
    ws.nat.workers = workers;
    ws.nat.blocks = &blocks;
    ws.nat.port_block_size = config.port_block_size;
    ws.nat.block_hold_down_ms = uint64_t{config.block_hold_down_s} * 1000;
    ws.nat.limits = config.limits;
    ws.nat.deterministic = &deterministic;
    ws.nat.deterministic_overflow = config.deterministic.overflow;
    ws.icmp_error_rate = config.icmp_error_rate;
    ws.exempt_destinations = config.exempt_destinations;
    ws.fragment_hold_budget = common::MbufBudget::held_per_worker(config.mbufs, workers);
    ws.pcp_servers = config.pcp.servers;
    ws.pcp_request_rate = config.pcp.requests_per_second;
    ws.pcp_request_burst = config.pcp.request_burst;
    return ws;
}

// The outside placement rules (--outside-flow-rules): with several workers, each outside
// packet on the queue of the worker owning its destination port's block, where the device
// takes the rules. `require` makes a refusal an error.
dp::PlacementOutcome place_outside_packets(const common::Config& config, uint16_t outside) {
    const auto workers = static_cast<unsigned>(config.worker_lcores.size());
    if (workers == 1 || config.outside_flow_rules == common::FlowRulesMode::off) return {};
    const auto matches =
        dp::outside_placement(config.port_range, config.port_block_size, workers);
    dp::PlacementOutcome placed = dp::install_placement(outside, matches);
    if (!placed.refused.empty() && config.outside_flow_rules == common::FlowRulesMode::require)
        throw dp::PortError("--outside-flow-rules require: " + placed.refused);
    return placed;
}

std::string describe_placement(const common::Config& config, const dp::PlacementOutcome& p) {
    if (config.worker_lcores.size() == 1) return "not needed (one worker)";
    if (config.outside_flow_rules == common::FlowRulesMode::off) return "off";
    if (p.rules > 0)
        return std::to_string(p.rules) + " (" +
               std::to_string(p.rules / std::size(dp::kPlacedProtocols)) +
               " each for UDP, TCP and ICMP echo replies): packets arrive at their owner";
    return "none, " + p.refused + "; RSS and the handoff rings place the packets";
}

void print_startup(const common::Config& config, const dp::WorkerSettings& ws,
                   const dp::PortSteering& rss, const dp::PortSteering& outside_setup,
                   const dp::PlacementOutcome& placement) {
    const auto workers = static_cast<unsigned>(config.worker_lcores.size());
    const uint16_t inside = ws.inside.port_id;
    const uint16_t outside = ws.outside.port_id;
    std::printf("cgnd: inside  port %u (%s) mac %s address %s mtu %u\n", inside,
                config.inside_port.c_str(), ws.inside.mac.to_string().c_str(),
                config.inside_address.to_string().c_str(), config.inside_mtu);
    std::printf("cgnd: outside port %u (%s) mac %s address %s mtu %u\n", outside,
                config.outside_port.c_str(), ws.outside.mac.to_string().c_str(),
                config.outside_address.to_string().c_str(), config.outside_mtu);
    std::string pools;
    for (const auto& p : config.pool) pools += " " + p.to_string();
    std::string lcores;
    for (unsigned l : config.worker_lcores)
        lcores += (lcores.empty() ? "" : ",") + std::to_string(l);
    std::printf(
        "cgnd: pool%s ports %u-%u in blocks of %u, filtering %s, %u worker%s on lcore%s %s, "
        "inside steering %s, outside %s\n",
        pools.c_str(), config.port_range.first, config.port_range.last, config.port_block_size,
        std::string(common::to_string(config.filtering)).c_str(), workers, workers == 1 ? "" : "s",
        workers == 1 ? "" : "s", lcores.c_str(),
        workers == 1        ? "not needed"
        : rss.rss_on_source ? "by NIC RSS"
                            : "by handoff",
        workers == 1               ? "on one queue"
        : outside_setup.rss_spread ? "spread by NIC RSS, steered by port block"
                                   : "steered by port block through handoff");
    std::printf("cgnd: outside flow rules: %s\n", describe_placement(config, placement).c_str());
}

// The control thread's loop until SIGINT/SIGTERM: management commands, SIGUSR1's counters,
// the workers' events, SIGHUP's reload.
// The control socket's commands: "pcp ..." for the PCP service, the rest for the Controller.
std::string execute(ctl::Controller& controller, ctl::PcpDaemon* pcp, std::string_view line) {
    std::istringstream in{std::string(line)};
    std::vector<std::string> words;
    for (std::string w; in >> w;) words.push_back(w);
    if (!words.empty() && words[0] == "pcp")
        return pcp != nullptr ? pcp->execute(words)
                              : "error: the PCP service is off (--pcp-server off)\n";
    std::string reply = controller.execute(line);
    if (pcp != nullptr && words.size() == 1 && words[0] == "help") reply += ctl::PcpDaemon::help();
    return reply;
}

// The control thread's loop until SIGINT/SIGTERM: a poll loop that waits only when it has
// nothing to do (at most 1 ms then, for the control socket): the workers' command answers and
// grace periods (ControlChannel::poll), PCP requests and answers, management commands,
// SIGUSR1's counters, the workers' events, SIGHUP's reload.
void serve_until_stopped(ctl::ControlSocket& control_socket, ctl::Controller& controller,
                         dp::ControlChannel& channel, ctl::PcpDaemon* pcp,
                         const std::vector<std::unique_ptr<common::WorkerCounters>>& counters,
                         const std::vector<std::unique_ptr<common::EventRing>>& events, int argc,
                         const char* const* argv) {
    size_t idle_loops = 0;
    while (!g_stop_requested.load()) {
        size_t work = channel.poll();
        if (pcp != nullptr) work += pcp->step();
        // Waits on the socket only after a run of idle loops: a burst of PCP requests and
        // their workers' answers are served without a pause between them.
        idle_loops = work != 0 ? 0 : idle_loops + 1;
        const auto wait = std::chrono::milliseconds(pcp == nullptr ? 50 : idle_loops > 64 ? 1 : 0);
        control_socket.serve_one(
            wait, [&](std::string_view line) { return execute(controller, pcp, line); });
        if (g_print_requested.exchange(false)) print(counters_text(counters, pcp));
        // The logs: one line per block given or taken back, per quota refusal (DESIGN 6).
        common::NatEvent event;
        for (auto& ring : events)
            while (ring->pop(event))
                std::printf("cgnd: event %s\n", common::to_string(event).c_str());
        std::fflush(stdout);
        if (g_reload_requested.exchange(false)) {
            // The same command line again: it names the config file, and its options still
            // win over the file's.
            try {
                const auto next = common::parse_command_line(argc, argv);
                print("cgnd: reload:\n" + controller.apply_config(next.config));
            } catch (const common::ConfigError& e) {
                print(std::string("cgnd: reload refused, nothing changed: ") + e.what() + "\n");
            }
        }
    }
}

// One worker per lcore, each with its own queues, counters, event ring and seed.
void create_workers(const dp::WorkerSettings& ws,
                    const std::vector<std::unique_ptr<common::EventRing>>& events,
                    const ctl::PcpDaemon* pcp, rte_mempool* pool, dp::TscClock& clock,
                    std::vector<std::unique_ptr<common::WorkerCounters>>& counters,
                    std::vector<std::unique_ptr<dp::Worker>>& worker_list) {
    const auto workers = static_cast<unsigned>(events.size());
    for (unsigned w = 0; w < workers; ++w) {
        dp::WorkerSettings mine = ws;
        mine.worker_id = mine.worker_index = mine.nat.worker_index = w;
        mine.seed = rte_rdtsc() + w;
        mine.inside.rx_queue = mine.inside.tx_queue = static_cast<uint16_t>(w);
        mine.outside.rx_queue = mine.outside.tx_queue = static_cast<uint16_t>(w);
        mine.nat.events = events[w].get();
        if (pcp != nullptr) {
            mine.pcp_requests = pcp->requests(w);
            mine.pcp_answers = pcp->answers(w);
        }
        counters.push_back(std::make_unique<common::WorkerCounters>());
        worker_list.push_back(std::make_unique<dp::Worker>(mine, pool, *counters.back(), clock));
    }
}

// `launches` holds each launch's arguments for as long as the worker runs.
void launch_workers(const common::Config& config,
                    const std::vector<std::unique_ptr<dp::Worker>>& worker_list,
                    const std::atomic<bool>& stop, std::vector<WorkerLaunch>& launches) {
    const auto workers = static_cast<unsigned>(worker_list.size());
    launches.reserve(workers);
    for (unsigned w = 0; w < workers; ++w) {
        launches.push_back({worker_list[w].get(), &stop});
        if (rte_eal_remote_launch(worker_main, &launches.back(), config.worker_lcores[w]) != 0)
            throw std::runtime_error("cannot launch a worker on lcore " +
                                     std::to_string(config.worker_lcores[w]));
    }
}

void stop_ports(uint16_t inside, uint16_t outside) {
    int rc_in = dp::stop_port(inside);
    int rc_out = dp::stop_port(outside);
    if (rc_in != 0 || rc_out != 0)
        std::fprintf(stderr, "cgnd: warning: stopping ports: %s\n",
                     rte_strerror(-(rc_in != 0 ? rc_in : rc_out)));
}

int run(const common::Config& config, int argc, const char* const* argv) {
    const auto workers = static_cast<unsigned>(config.worker_lcores.size());
    check_worker_lcores(config);

    const uint16_t inside = dp::find_port(config.inside_port, "inside-port");
    const uint16_t outside = dp::find_port(config.outside_port, "outside-port");
    const int socket = static_cast<int>(rte_lcore_to_socket_id(config.worker_lcores.front()));
    rte_mempool* pool = create_mbuf_pool(config, socket);
    const auto queues = static_cast<uint16_t>(workers);
    const dp::PortSteering rss =
        dp::start_port(inside, queues, queues, pool, "inside-port", true, config.inside_mtu);
    const dp::PortSteering outside_setup =
        dp::start_port(outside, queues, queues, pool, "outside-port", false, config.outside_mtu);
    warn_device_mtu(config, rss, outside_setup);
    const dp::PlacementOutcome placement = place_outside_packets(config, outside);
    std::unique_ptr<dp::HandoffRings> handoff;
    if (workers > 1)
        handoff = std::make_unique<dp::HandoffRings>("cgn_handoff", workers,
                                                     common::MbufBudget::kHandoffRing, socket);

    // The channel the control thread reconfigures the workers through (RCU, commands).
    auto initial = dp::runtime_settings(config);
    // Port blocks (RFC 6888 REQ-13/14), shared by the workers and the control thread.
    dp::BlockMap blocks(config.port_range, config.port_block_size, workers);
    // Deterministic NAT (RFC 7422): the formula's ranges, fixed at start; their blocks are
    // never dynamic.
    const common::DeterministicMap deterministic(config);
    reserve_deterministic_blocks(deterministic, blocks);
    // The one Steering of the process (workers and control thread): the inside port's
    // indirection table size when the NIC hashes for cgnd, the default otherwise.
    dp::ControlChannel channel(workers, socket, std::move(initial), 65536, blocks,
                               rss.rss_on_source ? rss.reta_size : dp::kDefaultRetaSize,
                               &deterministic);
    // Block and quota events, one ring per worker, written out by the control thread.
    std::vector<std::unique_ptr<common::EventRing>> events;
    for (unsigned w = 0; w < workers; ++w) events.push_back(std::make_unique<common::EventRing>());

    const dp::WorkerSettings ws = worker_settings(config, channel, handoff.get(), blocks,
                                                  deterministic, inside, outside, socket);

    // The durable explicit mappings (--pcp-store): PCP's, and the operator's static mappings
    // added live. Opened before the two that use it, and closed after them.
    std::unique_ptr<ctl::pcp::MappingStore> store;
    if (!config.pcp.store.empty())
        store = std::make_unique<ctl::pcp::MappingStore>(config.pcp.store);

    // The PCP service (RFC 6887, RFC 6886): its rings, store and server. Operator mappings
    // are the Controller's, made below; the service asks it once it serves.
    const ctl::Controller* controller_of_pcp = nullptr;
    std::unique_ptr<ctl::PcpDaemon> pcp;
    if (config.pcp.enabled)
        pcp = std::make_unique<ctl::PcpDaemon>(
            config, channel, pool, dp::port_mac(inside), socket,
            [&controller_of_pcp](uint8_t protocol, common::Ipv4Address addr, uint16_t port) {
                return controller_of_pcp != nullptr &&
                       controller_of_pcp->has_static(protocol, addr, port);
            },
            store.get());

    dp::TscClock clock;
    std::vector<std::unique_ptr<common::WorkerCounters>> counters;
    std::vector<std::unique_ptr<dp::Worker>> worker_list;
    create_workers(ws, events, pcp.get(), pool, clock, counters, worker_list);

    print_startup(config, ws, rss, outside_setup, placement);

    // Opened before the workers start: a socket already in use stops cgnd here, cleanly.
    ctl::ControlSocket control_socket(config.control_socket);
    install_signal_handlers();
    std::atomic<bool> stop{false};
    // Whatever ends run() from here on (a return or an exception) stops the workers first,
    // before the objects they use go.
    struct StopWorkers {
        std::atomic<bool>& stop;
        ~StopWorkers() {
            stop.store(true, std::memory_order_release);
            rte_eal_mp_wait_lcore();
        }
    } stop_workers{stop};
    std::vector<WorkerLaunch> launches;
    launch_workers(config, worker_list, stop, launches);
    ctl::Controller controller(
        channel, config, [&] { return counters_text(counters, pcp.get()); },
        [] { std::this_thread::sleep_for(std::chrono::microseconds(100)); });
    // The configuration's static mappings, then the live ones the store kept (the
    // configuration wins a conflict), then PCP's restored around them.
    controller.set_store(store.get());
    print(controller.install_static_mappings());
    print(controller.restore_stored_static_mappings());
    controller_of_pcp = &controller;
    if (pcp) {
        print(pcp->start());
        controller.set_pcp(pcp.get());
    } else {
        print("cgnd: pcp server off\n");
    }
    std::printf("cgnd: control socket %s\n", control_socket.path().c_str());
    std::printf("cgnd: ready\n");
    std::fflush(stdout);

    serve_until_stopped(control_socket, controller, channel, pcp.get(), counters, events, argc,
                        argv);
    std::printf("cgnd: stopping\n");
    stop.store(true, std::memory_order_release);
    rte_eal_mp_wait_lcore();
    worker_list.clear();
    const std::string last_counters = counters_text(counters, pcp.get());
    controller_of_pcp = nullptr;
    controller.set_pcp(nullptr);
    pcp.reset();
    handoff.reset();
    stop_ports(inside, outside);
    rte_mempool_free(pool);
    print(last_counters);
    std::printf("cgnd: stopped\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    common::ParseOutcome parsed;
    try {
        parsed = common::parse_command_line(argc, argv);
    } catch (const common::ConfigError& e) {
        std::fprintf(stderr, "cgnd: error: %s\n", e.what());
        return 2;
    }
    if (parsed.action == common::ParseOutcome::Action::help ||
        parsed.action == common::ParseOutcome::Action::answer) {
        std::fputs(parsed.help_text.c_str(), stdout);
        return 0;
    }
    if (parsed.action == common::ParseOutcome::Action::version) {
        std::puts("cgnd " CGN_VERSION);
        return 0;
    }
    const common::Config& config = parsed.config;

    std::vector<std::string> eal_args = common::eal_arguments(config, argv[0]);
    std::vector<char*> eal_argv;
    for (auto& a : eal_args) eal_argv.push_back(a.data());
    if (rte_eal_init(static_cast<int>(eal_argv.size()), eal_argv.data()) < 0) {
        std::string joined;
        for (size_t i = 1; i < eal_args.size(); ++i) joined += " " + eal_args[i];
        std::fprintf(stderr, "cgnd: error: DPDK EAL initialisation failed: %s (EAL arguments:%s)\n",
                     rte_strerror(rte_errno), joined.c_str());
        return 1;
    }
    int rc = 0;
    try {
        rc = run(config, argc, argv);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cgnd: error: %s\n", e.what());
        rc = 1;
    }
    rte_eal_cleanup();
    return rc;
}
