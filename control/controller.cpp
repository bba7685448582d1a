#include "control/controller.hpp"

#include <algorithm>
#include <charconv>
#include <sstream>

#include "dataplane/nat/nat_engine.hpp"

namespace cgn::ctl {

using common::ConfigError;

namespace {

const char* kHelp =
    "ok\n"
    "help                                   this text\n"
    "show counters                          every counter, summed over the workers\n"
    "show config                            the live settings\n"
    "set timeout udp|tcp-established|tcp-opening|tcp-transitory|icmp SECONDS\n"
    "set filtering endpoint-independent|address-dependent|address-and-port-dependent\n"
    "pool add PREFIX                        e.g. pool add 203.0.113.0/28\n"
    "static add tcp|udp INTERNAL:PORT EXTERNAL:PORT\n"
    "static add ip INTERNAL EXTERNAL        one-to-one: the whole address, ports unchanged\n"
    "static del tcp|udp INTERNAL:PORT\n"
    "static del ip INTERNAL\n"
    "static list\n";

std::vector<std::string> words(std::string_view line) {
    std::istringstream in{std::string(line)};
    std::vector<std::string> out;
    std::string w;
    while (in >> w) out.push_back(w);
    return out;
}

std::string protocol_name(uint8_t protocol) {
    return protocol == 6 ? "tcp" : protocol == 17 ? "udp" : std::to_string(protocol);
}

bool contains(const std::vector<common::StaticMapping>& list, const common::StaticMapping& m) {
    return std::find(list.begin(), list.end(), m) != list.end();
}

// Whether two static mappings want the same internal or external side: the rule of
// common::check_static_mapping, which refuses the second of such a pair.
bool collide(const common::StaticMapping& a, const common::StaticMapping& b) {
    if (a.one_to_one() || b.one_to_one())
        return a.internal_addr == b.internal_addr || a.external_addr == b.external_addr;
    if (a.protocol != b.protocol) return false;
    return (a.internal_addr == b.internal_addr && a.internal_port == b.internal_port) ||
           (a.external_addr == b.external_addr && a.external_port == b.external_port);
}

// The lines that tell the operator what a static mapping took from PCP.
std::string describe(const PcpWithdrawal& taken) {
    std::string out;
    for (const auto& m : taken.removed)
        out += "PCP mapping " + m.to_string() +
               " removed: the static mapping takes its place; its client is told (RFC 6887 "
               "section 14.2)\n";
    if (!taken.store_error.empty())
        out +=
            "warning: the removal of the PCP mappings is not stored yet (retried with the "
            "next commit): " +
            taken.store_error + "\n";
    return out;
}

}  // namespace

std::string PcpMappingView::to_string() const {
    return protocol_name(protocol) + " " + internal.to_string() + ":" +
           std::to_string(internal_port) + " " + external.to_string() + ":" +
           std::to_string(external_port);
}

Controller::Controller(dp::ControlChannel& channel, common::Config config,
                       std::function<std::string()> counters, dp::WhileWaiting while_waiting)
    : channel_(channel),
      config_(std::move(config)),
      steering_(channel.steering()),
      counters_(std::move(counters)),
      while_waiting_(std::move(while_waiting)) {
    // The static mappings of the configuration are installed by install_static_mappings().
    pending_statics_ = std::move(config_.static_mappings);
    config_.static_mappings.clear();
}

Controller::~Controller() = default;

std::string Controller::install_static_mappings() {
    std::string out;
    for (const auto& m : pending_statics_) {
        add_static(m);  // validated with the configuration: an error here is a bug, and throws
        out += "static mapping " + m.to_string() + "\n";
    }
    pending_statics_.clear();
    return out;
}

bool Controller::has_static(uint8_t protocol, common::Ipv4Address addr, uint16_t port) const {
    return std::any_of(
        config_.static_mappings.begin(), config_.static_mappings.end(),
        [&](const common::StaticMapping& m) {
            return m.internal_addr == addr &&
                   (m.one_to_one() || (m.protocol == protocol && m.internal_port == port));
        });
}

std::optional<uint32_t> Controller::pool_index(uint32_t addr) const {
    // The workers' numbering (AddressPool::index_of): config_.pool is in the order they added.
    return dp::pool_index_of(config_.pool, addr);
}

void Controller::publish(std::vector<dp::AddressPool::Extension> pool_additions) {
    auto next = dp::runtime_settings(config_);
    next->explicit_mappings = static_cast<uint32_t>(config_.static_mappings.size());
    next->pool_additions = std::move(pool_additions);
    channel_.publish(std::move(next), while_waiting_);
}

int Controller::command(unsigned worker, dp::WorkerCommand::Kind kind, uint8_t protocol,
                        uint32_t addr, uint16_t port) {
    dp::WorkerCommand cmd;
    cmd.kind = kind;
    cmd.protocol = protocol;
    cmd.addr = addr;
    cmd.port = port;
    // A command the worker did not answer in time stays with the channel until it completes.
    return channel_.run(worker, cmd, while_waiting_);
}

void Controller::set_timeout(std::string_view which, uint32_t seconds) {
    common::Timeouts t = config_.timeouts;
    uint32_t* field = which == "udp"               ? &t.udp_s
                      : which == "tcp-established" ? &t.tcp_established_s
                      : which == "tcp-opening"     ? &t.tcp_opening_s
                      : which == "tcp-transitory"  ? &t.tcp_transitory_s
                      : which == "icmp"            ? &t.icmp_s
                                                   : nullptr;
    if (field == nullptr)
        throw ConfigError("unknown timeout '" + std::string(which) +
                          "': expected udp, tcp-established, tcp-opening, tcp-transitory or icmp");
    const uint32_t max =
        which == "tcp-established" ? common::kMaxTcpEstablishedTimeoutS : common::kMaxTimeoutS;
    if (seconds < 1 || seconds > max)
        throw ConfigError("invalid value '" + std::to_string(seconds) + "' for --timeout-" +
                          std::string(which) + ": expected 1 to " + std::to_string(max));
    *field = seconds;
    config_.timeouts = t;
    publish();
}

void Controller::set_filtering(common::FilteringMode mode) {
    config_.filtering = mode;
    publish();
}

void Controller::add_pool(const common::Ipv4Prefix& prefix) {
    common::check_pool_prefix(config_, prefix);
    // The port sets are built here, on the control thread; each worker adopts one.
    std::vector<dp::AddressPool::Extension> additions;
    for (unsigned w = 0; w < channel_.workers(); ++w)
        additions.push_back(dp::AddressPool::build_extension({prefix}, channel_.blocks()));
    config_.pool.push_back(prefix);
    publish(std::move(additions));
}

PcpWithdrawal Controller::add_static(const common::StaticMapping& m) {
    install_static(m);
    return withdraw_pcp_covered(m);
}

void Controller::install_static(const common::StaticMapping& m) {
    common::check_static_mapping(config_, m);
    // The external side held by a PCP mapping: refused before anything changes (the top of
    // controller.hpp says why).
    if (const auto holders =
            pcp_ != nullptr ? pcp_->on_external_side(m) : std::vector<PcpMappingView>{};
        !holders.empty()) {
        constexpr size_t kNamed = 4;
        std::string names;
        for (size_t i = 0; i < holders.size() && i < kNamed; ++i)
            names += (i == 0 ? "" : ", ") + holders[i].to_string();
        if (holders.size() > kNamed)
            names += " and " + std::to_string(holders.size() - kNamed) + " more";
        const std::string side =
            m.one_to_one() ? m.external_addr.to_string()
                           : m.external_addr.to_string() + ":" + std::to_string(m.external_port);
        const std::string remove_first =
            m.one_to_one() ? "pcp del external " + m.external_addr.to_string()
                           : "pcp del " + protocol_name(holders.front().protocol) + " " +
                                 holders.front().internal.to_string() + ":" +
                                 std::to_string(holders.front().internal_port);
        throw ConfigError("invalid value '" + m.to_string() + "' for --static-mapping: " + side +
                          " is in use by the PCP mapping" + (holders.size() > 1 ? "s " : " ") +
                          names + "; remove " + (holders.size() > 1 ? "them" : "it") + " first ('" +
                          remove_first + "') or choose another external " +
                          (m.one_to_one() ? "address" : "port"));
    }
    const uint32_t ext = m.external_addr.value;
    if (m.one_to_one())
        reserve_address(m);
    else
        reserve_static_port(m);
    if (!channel_.explicit_mappings().insert(m.protocol, {m.internal_addr.value, m.internal_port},
                                             {ext, m.external_port})) {
        if (m.one_to_one())
            release_address(m);
        else
            release_static_port(m);
        throw ConfigError("invalid value '" + m.to_string() +
                          "' for --static-mapping: the explicit mapping table is full");
    }
    config_.static_mappings.push_back(m);
    publish();
    // From now on the internal endpoint's new packets take the static mapping; a dynamic
    // mapping it had goes, with its sessions (endpoint-independent mapping: one external
    // endpoint per internal endpoint). A one-to-one mapping replaces all of them.
    command(steering_.subscriber_owner(m.internal_addr.value),
            m.one_to_one() ? dp::WorkerCommand::Kind::drop_address
                           : dp::WorkerCommand::Kind::drop_dynamic_mapping,
            m.protocol, m.internal_addr.value, m.internal_port);
}

PcpWithdrawal Controller::withdraw_pcp_covered(const common::StaticMapping& m) {
    // The PCP service gives the mappings back to the NAT and has the owning worker drop what
    // is left of them (PcpDaemon::withdraw_internal_side); for a one-to-one mapping the
    // worker's drop_address took them already.
    return pcp_ != nullptr ? pcp_->withdraw_internal_side(m) : PcpWithdrawal{};
}

bool Controller::is_live(const common::StaticMapping& m) const {
    return contains(live_statics_, m);
}

void Controller::remove_live_static(const common::StaticMapping& m) {
    if (store_ != nullptr) store_->forget_static(m);  // throws: nothing changed
    live_statics_.erase(std::find(live_statics_.begin(), live_statics_.end(), m));
    remove_static(m.protocol, m.internal_addr, m.internal_port);
}

std::string Controller::restore_stored_static_mappings() {
    if (store_ == nullptr) return "";
    std::string out;
    for (const auto& s : store_->load_statics()) {
        const std::string text = s.to_string();
        if (contains(config_.static_mappings, s)) {
            store_->forget_static(s);
            out += "static mapping " + text +
                   ": in the configuration now; its stored copy (added live) is dropped\n";
            continue;
        }
        // The configuration wins over what was added live.
        const auto clash =
            std::find_if(config_.static_mappings.begin(), config_.static_mappings.end(),
                         [&](const common::StaticMapping& c) { return collide(c, s); });
        if (clash != config_.static_mappings.end()) {
            store_->forget_static(s);
            out += "cgnd: warning: the stored static mapping " + text +
                   " (added live) conflicts with the configuration's " + clash->to_string() +
                   ": the configuration wins, the stored one is dropped\n";
            continue;
        }
        try {
            install_static(s);
        } catch (const ConfigError& e) {
            // The pool or the port range changed meanwhile, for instance: it cannot run, and
            // the store keeps what runs.
            store_->forget_static(s);
            out += "cgnd: warning: the stored static mapping " + text +
                   " (added live) cannot be installed and is dropped: " + e.what() + "\n";
            continue;
        }
        live_statics_.push_back(s);
        out += "static mapping " + text + " (added live, kept in the store)\n";
    }
    return out;
}

void Controller::remove_static(uint8_t protocol, common::Ipv4Address addr, uint16_t port) {
    auto it = std::find_if(config_.static_mappings.begin(), config_.static_mappings.end(),
                           [&](const common::StaticMapping& m) {
                               return m.protocol == protocol && m.internal_addr == addr &&
                                      m.internal_port == port;
                           });
    if (it == config_.static_mappings.end())
        throw ConfigError(protocol == common::StaticMapping::kOneToOne
                              ? "no one-to-one mapping of " + addr.to_string()
                              : "no static mapping of " +
                                    std::string(protocol == 6 ? "tcp " : "udp ") +
                                    addr.to_string() + ":" + std::to_string(port));
    const common::StaticMapping m = *it;
    channel_.explicit_mappings().erase(m.protocol, {addr.value, port});
    config_.static_mappings.erase(it);
    publish();  // no worker can find the mapping after this
    if (m.one_to_one()) {
        // Its mappings were made per endpoint as traffic came: the worker finds them all.
        command(steering_.subscriber_owner(addr.value), dp::WorkerCommand::Kind::drop_address,
                m.protocol, addr.value, 0);
        release_address(m);
        return;
    }
    command(steering_.subscriber_owner(addr.value), dp::WorkerCommand::Kind::drop_explicit_mapping,
            m.protocol, addr.value, port);
    release_static_port(m);
}

void Controller::reserve_address(const common::StaticMapping& m) {
    // Every block of the external address goes to the control thread: no subscriber gets a
    // port there while the one-to-one mapping exists.
    dp::BlockMap& blocks = channel_.blocks();
    const uint32_t index = *pool_index(m.external_addr.value);
    unsigned held = 0, reserved = 0;
    std::vector<uint32_t> claimed;
    for (uint32_t b = 0; b < blocks.blocks_per_address(); ++b) {
        if (blocks.claim(index, b, dp::BlockMap::kControl)) {
            claimed.push_back(b);
            continue;
        }
        const uint8_t holder = blocks.holder(index, b);
        if (holder == dp::BlockMap::kReserved)
            ++reserved;
        else
            ++held;
    }
    if (held == 0 && reserved == 0) return;
    for (const uint32_t b : claimed) blocks.release(index, b);
    throw ConfigError("invalid value '" + m.to_string() +
                      "' for --static-mapping: " + m.external_addr.to_string() + " is in use (" +
                      (reserved
                           ? std::to_string(reserved) + " port blocks are deterministic NAT ranges"
                           : std::to_string(held) +
                                 " port blocks are held by subscribers or static port mappings") +
                      "); a one-to-one mapping needs an external address nothing else uses");
}

void Controller::release_address(const common::StaticMapping& m) {
    dp::BlockMap& blocks = channel_.blocks();
    const uint32_t index = *pool_index(m.external_addr.value);
    for (uint32_t b = 0; b < blocks.blocks_per_address(); ++b) blocks.release(index, b);
}

void Controller::reserve_static_port(const common::StaticMapping& m) {
    dp::BlockMap& blocks = channel_.blocks();
    const auto block = blocks.block_of(m.external_port);
    if (!block) return;  // outside every block: never used dynamically
    const uint32_t index = *pool_index(m.external_addr.value);
    // The block may change hands while we look (a worker claims it, or gives it back after its
    // hold-down): retry until one of the outcomes holds.
    for (int attempt = 0; attempt < 100; ++attempt) {
        const uint8_t holder = blocks.holder(index, *block);
        if (holder == dp::BlockMap::kReserved)
            throw ConfigError("invalid value '" + m.to_string() + "' for --static-mapping: " +
                              m.external_addr.to_string() + ":" + std::to_string(m.external_port) +
                              " is in a deterministic NAT range; choose another external port");
        if (holder == dp::BlockMap::kControl ||
            (holder == dp::BlockMap::kFree &&
             blocks.claim(index, *block, dp::BlockMap::kControl))) {
            ++control_blocks_[{index, *block}];
            return;
        }
        if (!dp::BlockMap::is_worker(holder)) continue;
        const int result =
            command(dp::BlockMap::worker_of(holder), dp::WorkerCommand::Kind::reserve_port,
                    m.protocol, m.external_addr.value, m.external_port);
        if (result == dp::NatEngine::kReserved) return;
        if (result == dp::NatEngine::kInUse)
            throw ConfigError("invalid value '" + m.to_string() + "' for --static-mapping: " +
                              m.external_addr.to_string() + ":" + std::to_string(m.external_port) +
                              " is in use by a dynamic mapping; choose another external port "
                              "(one outside --port-range is never used dynamically)");
        if (result < 0)
            throw ConfigError(
                "invalid value '" + m.to_string() + "' for --static-mapping: worker " +
                std::to_string(dp::BlockMap::worker_of(holder)) + " did not answer; try again");
    }
    throw ConfigError("invalid value '" + m.to_string() +
                      "' for --static-mapping: its port block kept changing hands; try again");
}

void Controller::release_static_port(const common::StaticMapping& m) {
    dp::BlockMap& blocks = channel_.blocks();
    const auto block = blocks.block_of(m.external_port);
    if (!block) return;
    const uint32_t index = *pool_index(m.external_addr.value);
    auto it = control_blocks_.find({index, *block});
    if (it != control_blocks_.end()) {
        if (--it->second == 0) {
            control_blocks_.erase(it);
            blocks.release(index, *block);
        }
        return;
    }
    // Reserved in the worker holding the block: the reservation keeps the block there.
    const uint8_t holder = blocks.holder(index, *block);
    if (dp::BlockMap::is_worker(holder))
        command(dp::BlockMap::worker_of(holder), dp::WorkerCommand::Kind::release_port, m.protocol,
                m.external_addr.value, m.external_port);
}

std::string Controller::show_config() const {
    std::ostringstream out;
    out << "ok\nfiltering " << common::to_string(config_.filtering) << "\n"
        << "timeout-udp " << config_.timeouts.udp_s << "\n"
        << "timeout-tcp-established " << config_.timeouts.tcp_established_s << "\n"
        << "timeout-tcp-opening " << config_.timeouts.tcp_opening_s << "\n"
        << "timeout-tcp-transitory " << config_.timeouts.tcp_transitory_s << "\n"
        << "timeout-icmp " << config_.timeouts.icmp_s << "\n";
    for (const auto& p : config_.pool) out << "pool " << p.to_string() << "\n";
    for (const auto& m : config_.static_mappings) out << "static-mapping " << m.to_string() << "\n";
    return out.str();
}

std::string Controller::execute_set_timeout(const std::vector<std::string>& w) {
    uint32_t seconds = 0;
    auto [ptr, ec] = std::from_chars(w[3].data(), w[3].data() + w[3].size(), seconds);
    if (ec != std::errc() || ptr != w[3].data() + w[3].size())
        throw ConfigError("invalid value '" + w[3] + "' for --timeout-" + w[2] +
                          ": expected a whole number of seconds");
    set_timeout(w[2], seconds);
    return "ok: timeout " + w[2] + " is " + w[3] + " s\n";
}

std::string Controller::execute_set_filtering(const std::vector<std::string>& w) {
    for (auto m :
         {common::FilteringMode::endpoint_independent, common::FilteringMode::address_dependent,
          common::FilteringMode::address_and_port_dependent}) {
        if (w[2] == common::to_string(m)) {
            set_filtering(m);
            return "ok: filtering is " + w[2] + "\n";
        }
    }
    throw ConfigError("invalid value '" + w[2] +
                      "' for --filtering: expected endpoint-independent, "
                      "address-dependent or address-and-port-dependent");
}

std::string Controller::execute_pool_add(const std::vector<std::string>& w) {
    auto p = common::Ipv4Prefix::parse(w[2]);
    if (!p || p->length < 8)
        throw ConfigError("invalid value '" + w[2] +
                          "' for --pool: expected an IPv4 prefix with zero host bits");
    add_pool(*p);
    return "ok: pool " + p->to_string() + " added\n";
}

std::string Controller::execute_static_add(const std::vector<std::string>& w) {
    const std::string text = w[2] + " " + w[3] + " " + w[4];
    auto m = common::StaticMapping::parse(text);
    if (!m)
        throw ConfigError("invalid value '" + text +
                          "' for --static-mapping: expected \"tcp|udp INTERNAL:PORT "
                          "EXTERNAL:PORT\" or \"ip INTERNAL EXTERNAL\"");
    install_static(*m);
    if (store_ != nullptr) {
        try {
            store_->store_static(*m);
        } catch (const pcp::StoreError& e) {
            // Not durable: undone, so that "ok" always means the mapping survives a restart.
            remove_static(m->protocol, m->internal_addr, m->internal_port);
            throw ConfigError("static mapping " + m->to_string() + " not added: " + e.what());
        }
    }
    live_statics_.push_back(*m);
    // PCP gives way only once the mapping is in (and stored): nothing is taken for nothing.
    const PcpWithdrawal taken = withdraw_pcp_covered(*m);
    return "ok: static mapping " + m->to_string() + " added" + (store_ ? " (stored)" : "") + "\n" +
           describe(taken);
}

std::string Controller::execute_static_del(const std::vector<std::string>& w) {
    // Reuse the mapping parser with a dummy external endpoint for the internal one.
    auto m = common::StaticMapping::parse(w[2] + " " + w[3] +
                                          (w[2] == "ip" ? " 0.0.0.0" : " 0.0.0.0:1"));
    if (!m)
        throw ConfigError("invalid value '" + w[2] + " " + w[3] +
                          "' for static del: expected \"tcp|udp INTERNAL:PORT\" or "
                          "\"ip INTERNAL\"");
    const auto it = std::find_if(config_.static_mappings.begin(), config_.static_mappings.end(),
                                 [&](const common::StaticMapping& s) {
                                     return s.protocol == m->protocol &&
                                            s.internal_addr == m->internal_addr &&
                                            s.internal_port == m->internal_port;
                                 });
    if (it != config_.static_mappings.end() && is_live(*it)) {
        const common::StaticMapping live = *it;  // (`it` goes with the mapping)
        remove_live_static(live);
        return "ok: static mapping of " + w[2] + " " + w[3] + " removed\n";
    }
    remove_static(m->protocol, m->internal_addr, m->internal_port);  // throws when absent
    return "ok: static mapping of " + w[2] + " " + w[3] +
           " removed (it is in the configuration: a restart or SIGHUP brings it back)\n";
}

std::string Controller::static_list() const {
    std::string out = "ok\n";
    for (const auto& m : config_.static_mappings) out += m.to_string() + "\n";
    return out;
}

std::string Controller::execute(std::string_view line) {
    const auto w = words(line);
    try {
        if (w.empty() || w[0] == "help") return kHelp;
        if (w.size() == 2 && w[0] == "show" && w[1] == "counters") return "ok\n" + counters_();
        if (w.size() == 2 && w[0] == "show" && w[1] == "config") return show_config();
        if (w.size() == 4 && w[0] == "set" && w[1] == "timeout") return execute_set_timeout(w);
        if (w.size() == 3 && w[0] == "set" && w[1] == "filtering") return execute_set_filtering(w);
        if (w.size() == 3 && w[0] == "pool" && w[1] == "add") return execute_pool_add(w);
        if (w.size() == 5 && w[0] == "static" && w[1] == "add") return execute_static_add(w);
        if (w.size() == 4 && w[0] == "static" && w[1] == "del") return execute_static_del(w);
        if (w.size() == 2 && w[0] == "static" && w[1] == "list") return static_list();
        return "error: unknown command '" + std::string(line) + "' (try 'help')\n";
    } catch (const ConfigError& e) {
        return std::string("error: ") + e.what() + "\n";
    } catch (const pcp::StoreError& e) {
        return std::string("error: nothing changed: ") + e.what() + "\n";
    }
}

// The options of `next` that differ and cannot change live.
void Controller::note_restart_options(const common::Config& next, std::ostringstream& out) const {
    auto note_restart = [&](bool changed, const char* option) {
        if (changed) out << "not applied (needs a restart): --" << option << "\n";
    };
    const common::Config& cur = config_;
    note_restart(next.inside_port != cur.inside_port, "inside-port");
    note_restart(next.outside_port != cur.outside_port, "outside-port");
    note_restart(next.inside_address.to_string() != cur.inside_address.to_string(),
                 "inside-address");
    note_restart(next.outside_address.to_string() != cur.outside_address.to_string(),
                 "outside-address");
    note_restart(next.inside_gateway != cur.inside_gateway, "inside-gateway");
    note_restart(next.outside_gateway != cur.outside_gateway, "outside-gateway");
    note_restart(next.inside_mtu != cur.inside_mtu, "inside-mtu");
    note_restart(next.outside_mtu != cur.outside_mtu, "outside-mtu");
    note_restart(next.outside_flow_rules != cur.outside_flow_rules, "outside-flow-rules");
    note_restart(next.worker_lcores != cur.worker_lcores || next.main_lcore != cur.main_lcore,
                 "worker-lcores");
    note_restart(next.eal_args != cur.eal_args, "eal-args");
    note_restart(next.max_sessions != cur.max_sessions, "max-sessions");
    note_restart(next.port_range.first != cur.port_range.first ||
                     next.port_range.last != cur.port_range.last,
                 "port-range");
    note_restart(next.control_socket != cur.control_socket, "control-socket");
    note_restart(next.port_parity != cur.port_parity, "port-parity");
    note_restart(next.exempt_destinations != cur.exempt_destinations, "exempt-destination");
    note_restart(next.port_block_size != cur.port_block_size, "port-block-size");
    note_restart(next.deterministic != cur.deterministic, "deterministic");
    note_restart(next.pcp.store != cur.pcp.store, "pcp-store");
    // The PCP service takes its settings at start (control/pcp_daemon.cpp).
    const common::PcpConfig& np = next.pcp;
    const common::PcpConfig& cp = cur.pcp;
    note_restart(np.enabled != cp.enabled || np.servers != cp.servers, "pcp-server");
    note_restart(np.subscribers != cp.subscribers, "pcp-subscribers");
    note_restart(np.third_party != cp.third_party, "pcp-third-party");
    note_restart(np.min_lifetime_s != cp.min_lifetime_s, "pcp-min-lifetime");
    note_restart(np.max_lifetime_s != cp.max_lifetime_s, "pcp-max-lifetime");
    note_restart(np.max_mappings_per_subscriber != cp.max_mappings_per_subscriber,
                 "pcp-max-mappings");
    note_restart(np.requests_per_second != cp.requests_per_second, "pcp-request-rate");
    note_restart(np.request_burst != cp.request_burst, "pcp-request-burst");
    note_restart(np.suggestable_ports.first != cp.suggestable_ports.first ||
                     np.suggestable_ports.last != cp.suggestable_ports.last,
                 "pcp-ports");
}

void Controller::apply_timeouts(const common::Config& next, const Attempt& attempt) {
    const common::Config& cur = config_;
    const auto& t = next.timeouts;
    const std::pair<const char*, uint32_t> timeouts[] = {{"udp", t.udp_s},
                                                         {"tcp-established", t.tcp_established_s},
                                                         {"tcp-opening", t.tcp_opening_s},
                                                         {"tcp-transitory", t.tcp_transitory_s},
                                                         {"icmp", t.icmp_s}};
    const common::Timeouts before = cur.timeouts;
    const uint32_t old_values[] = {before.udp_s, before.tcp_established_s, before.tcp_opening_s,
                                   before.tcp_transitory_s, before.icmp_s};
    static_assert(std::size(timeouts) == std::size(old_values));
    for (size_t i = 0; i < std::size(timeouts); ++i)
        if (timeouts[i].second != old_values[i])
            attempt(std::string("timeout-") + timeouts[i].first + " " +
                        std::to_string(timeouts[i].second),
                    [&] { set_timeout(timeouts[i].first, timeouts[i].second); });
}

// The configuration's static mappings: withdraw those gone or changed, then add the new ones.
// Those added live are not the file's to remove; one of the file's that wants the same side
// as a live one wins (the top of controller.hpp).
void Controller::apply_static_mappings(const common::Config& next, const Attempt& attempt,
                                       std::ostringstream& out) {
    std::vector<common::StaticMapping> configured;
    for (const auto& m : config_.static_mappings)
        if (!is_live(m)) configured.push_back(m);
    for (const auto& m : configured)
        if (!contains(next.static_mappings, m))
            attempt("static-mapping " + m.to_string() + " removed",
                    [&] { remove_static(m.protocol, m.internal_addr, m.internal_port); });
    for (const auto& m : next.static_mappings) {
        if (contains(configured, m)) continue;
        if (is_live(m)) {
            // Added live and now in the file: the configuration records it from now on.
            attempt("static-mapping " + m.to_string() + " is the configuration's now", [&] {
                if (store_ != nullptr) store_->forget_static(m);
                live_statics_.erase(std::find(live_statics_.begin(), live_statics_.end(), m));
            });
            continue;
        }
        const auto live = live_statics_;
        for (const auto& l : live) {
            if (!collide(l, m)) continue;
            out << "warning: static-mapping " << l.to_string()
                << " (added live) is removed: the configuration's " << m.to_string()
                << " takes its place\n";
            attempt("static-mapping " + l.to_string() + " removed", [&] { remove_live_static(l); });
        }
        PcpWithdrawal taken;
        attempt("static-mapping " + m.to_string() + " added", [&] { taken = add_static(m); });
        out << describe(taken);
    }
}

std::string Controller::apply_config(const common::Config& next) {
    std::ostringstream out;
    note_restart_options(next, out);
    const common::Config& cur = config_;
    if (next.limits != cur.limits || next.block_hold_down_s != cur.block_hold_down_s) {
        config_.limits = next.limits;
        config_.block_hold_down_s = next.block_hold_down_s;
        publish();
        out << "applied: subscriber limits and block hold-down\n";
    }

    auto attempt = [&](const std::string& what, const std::function<void()>& change) {
        try {
            change();
            out << "applied: " << what << "\n";
        } catch (const ConfigError& e) {
            out << "error: " << what << ": " << e.what() << "\n";
        } catch (const pcp::StoreError& e) {
            out << "error: " << what << ": " << e.what() << "\n";
        }
    };
    apply_timeouts(next, attempt);
    if (next.filtering != cur.filtering)
        attempt(std::string("filtering ") + std::string(common::to_string(next.filtering)),
                [&] { set_filtering(next.filtering); });
    for (const auto& p : cur.pool)
        if (std::find(next.pool.begin(), next.pool.end(), p) == next.pool.end())
            out << "not applied (needs a restart): removing pool " << p.to_string() << "\n";
    for (const auto& p : next.pool)
        if (std::find(cur.pool.begin(), cur.pool.end(), p) == cur.pool.end())
            attempt("pool " + p.to_string(), [&] { add_pool(p); });
    apply_static_mappings(next, attempt, out);
    std::string text = out.str();
    return text.empty() ? "nothing changed\n" : text;
}

}  // namespace cgn::ctl
