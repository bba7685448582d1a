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

}  // namespace

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
    return std::any_of(config_.static_mappings.begin(), config_.static_mappings.end(),
                       [&](const common::StaticMapping& m) {
                           return m.internal_addr == addr &&
                                  (m.one_to_one() ||
                                   (m.protocol == protocol && m.internal_port == port));
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

void Controller::add_static(const common::StaticMapping& m) {
    common::check_static_mapping(config_, m);
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
    add_static(*m);
    return "ok: static mapping " + m->to_string() + " added\n";
}

std::string Controller::execute_static_del(const std::vector<std::string>& w) {
    // Reuse the mapping parser with a dummy external endpoint for the internal one.
    auto m = common::StaticMapping::parse(w[2] + " " + w[3] +
                                          (w[2] == "ip" ? " 0.0.0.0" : " 0.0.0.0:1"));
    if (!m)
        throw ConfigError("invalid value '" + w[2] + " " + w[3] +
                          "' for static del: expected \"tcp|udp INTERNAL:PORT\" or "
                          "\"ip INTERNAL\"");
    remove_static(m->protocol, m->internal_addr, m->internal_port);
    return "ok: static mapping of " + w[2] + " " + w[3] + " removed\n";
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

// Static mappings: withdraw those gone or changed, then add the new ones.
void Controller::apply_static_mappings(const common::Config& next, const Attempt& attempt) {
    const common::Config& cur = config_;
    const auto old_statics = cur.static_mappings;
    for (const auto& m : old_statics)
        if (std::find(next.static_mappings.begin(), next.static_mappings.end(), m) ==
            next.static_mappings.end())
            attempt("static-mapping " + m.to_string() + " removed",
                    [&] { remove_static(m.protocol, m.internal_addr, m.internal_port); });
    for (const auto& m : next.static_mappings)
        if (std::find(old_statics.begin(), old_statics.end(), m) == old_statics.end())
            attempt("static-mapping " + m.to_string() + " added", [&] { add_static(m); });
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
    apply_static_mappings(next, attempt);
    std::string text = out.str();
    return text.empty() ? "nothing changed\n" : text;
}

}  // namespace cgn::ctl
