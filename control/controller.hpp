#pragma once
// The control thread's side of live reconfiguration (issue 3): changes timeouts, filtering,
// the pool and static mappings while the workers translate, without stopping them. It is the
// only writer of the shared state (DESIGN invariant 2) and reaches the workers' own tables
// only through commands that the owning worker executes (invariant 4).
//
// Every change is validated against the current configuration first and is applied whole or
// not at all (invariant 8); the reply says which. The cgnd control socket and SIGHUP both
// come here; cgnctl will too.

#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"
#include "dataplane/io/control_channel.hpp"
#include "dataplane/nat/steering.hpp"

namespace cgn::ctl {

class Controller {
public:
    // `config`: what the workers were started with. `counters`: the text of
    // "show counters". `while_waiting`: what to do while waiting for the workers.
    Controller(dp::ControlChannel& channel, common::Config config,
               std::function<std::string()> counters, dp::WhileWaiting while_waiting);
    ~Controller();

    // One command line of the control protocol; the reply starts with "ok" or "error:".
    std::string execute(std::string_view line);

    // Applies what differs between the running configuration and `next` (SIGHUP). Options
    // that cannot change live are reported, not applied.
    std::string apply_config(const common::Config& next);

    // The static mappings of the configuration, installed at start (before traffic).
    std::string install_static_mappings();

    const common::Config& config() const { return config_; }
    // Whether an operator mapping covers the internal endpoint: a static mapping of it, or a
    // one-to-one mapping of its address (the PCP server may neither take nor delete those).
    bool has_static(uint8_t protocol, common::Ipv4Address addr, uint16_t port) const;

    // Each throws ConfigError (naming the option) when the change is refused.
    void set_timeout(std::string_view which, uint32_t seconds);
    void set_filtering(common::FilteringMode mode);
    void add_pool(const common::Ipv4Prefix& prefix);
    void add_static(const common::StaticMapping& mapping);
    void remove_static(uint8_t protocol, common::Ipv4Address addr, uint16_t port);

private:
    void publish(std::vector<dp::AddressPool::Extension> pool_additions = {});
    // The worker's result (1 done, 0 refused, 2 block not held), or -1 when it did not answer.
    int command(unsigned worker, dp::WorkerCommand::Kind kind, uint8_t protocol, uint32_t addr,
                uint16_t port);
    // Sets the external port of a static mapping aside: in the worker holding its block, or
    // in a block the control thread claims; throws ConfigError when a dynamic mapping has it.
    void reserve_static_port(const common::StaticMapping& m);
    void release_static_port(const common::StaticMapping& m);
    // A one-to-one mapping's external address, all its blocks claimed by the control thread;
    // throws ConfigError naming what holds any of them.
    void reserve_address(const common::StaticMapping& m);
    void release_address(const common::StaticMapping& m);
    std::optional<uint32_t> pool_index(uint32_t addr) const;
    // The commands of execute(), each given the command's words.
    std::string show_config() const;
    std::string execute_set_timeout(const std::vector<std::string>& w);
    std::string execute_set_filtering(const std::vector<std::string>& w);
    std::string execute_pool_add(const std::vector<std::string>& w);
    std::string execute_static_add(const std::vector<std::string>& w);
    std::string execute_static_del(const std::vector<std::string>& w);
    std::string static_list() const;
    // Parts of apply_config(): `attempt` applies one change and notes the outcome.
    using Attempt = std::function<void(const std::string& what, const std::function<void()>&)>;
    void note_restart_options(const common::Config& next, std::ostringstream& out) const;
    void apply_timeouts(const common::Config& next, const Attempt& attempt);
    void apply_static_mappings(const common::Config& next, const Attempt& attempt);
    bool in_port_range(uint16_t port) const {
        return port >= config_.port_range.first && port <= config_.port_range.last;
    }

    dp::ControlChannel& channel_;
    common::Config config_;
    const dp::Steering& steering_;  // the channel's: the one the workers use
    std::function<std::string()> counters_;
    dp::WhileWaiting while_waiting_;
    std::vector<common::StaticMapping> pending_statics_;
    // Blocks the control thread holds for static mappings: (pool index, block) -> mappings.
    std::map<std::pair<uint32_t, uint32_t>, uint32_t> control_blocks_;
};

}  // namespace cgn::ctl
