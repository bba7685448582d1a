#pragma once
// The control thread's side of live reconfiguration (issue 3): changes timeouts, filtering,
// the pool and static mappings while the workers translate, without stopping them. It is the
// only writer of the shared state (DESIGN invariant 2) and reaches the workers' own tables
// only through commands that the owning worker executes (invariant 4).
//
// Every change is validated against the current configuration first and is applied whole or
// not at all (invariant 8); the reply says which. The cgnd control socket and SIGHUP both
// come here; cgnctl will too.
//
// Static mappings have two origins. The configuration's (--static-mapping, the config file)
// are recorded there; SIGHUP makes them what the file says. Those added live ("static add" on
// the control socket) are recorded in the mapping store when there is one (--pcp-store), so
// that a restart, kill -9 included, has them again: "ok" is answered once the mapping is on
// disk, "static del" forgets it. SIGHUP leaves the live ones alone. When the two disagree (a
// live mapping and one of the configuration want the same internal or external side), the
// configuration wins: the live one goes, from the store too, with a warning line.
//
// PCP's mappings (RFC 6887) yield to the operator's on the internal side: a static mapping of
// an internal endpoint a PCP mapping holds (a one-to-one mapping of a subscriber that has PCP
// mappings) takes its place, and the PCP client is told (§14.2, unsolicited MAP with lifetime
// 0), since the operator's mapping of the subscriber is the one in force and PCP could not
// have made its own after it (the server answers NOT_AUTHORIZED for operator-mapped
// endpoints). On the external side the operator's mapping is refused, naming the PCP mapping:
// that endpoint belongs to another subscriber's port block, the operator picks the external
// side freely (a port outside --port-range is never dynamic), and taking it would be two
// steps that cannot be undone together; "pcp del" first does it on purpose.

#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"
#include "control/pcp/store.hpp"
#include "dataplane/io/control_channel.hpp"
#include "dataplane/nat/steering.hpp"

namespace cgn::ctl {

// A PCP mapping as the operator's commands name it.
struct PcpMappingView {
    uint8_t protocol = 0;
    common::Ipv4Address internal;
    uint16_t internal_port = 0;
    common::Ipv4Address external;
    uint16_t external_port = 0;
    std::string to_string() const;  // "tcp 100.64.0.11:8080 198.51.100.1:20000"
};

// What the operator's change took from PCP.
struct PcpWithdrawal {
    std::vector<PcpMappingView> removed;  // their clients told (RFC 6887 §14.2)
    std::string store_error;              // not empty: their removal is not on disk yet
};

// PCP's mappings as the operator's changes meet them (in cgnd the PcpDaemon; none when PCP
// is off). Control thread only.
class PcpMappings {
public:
    virtual ~PcpMappings() = default;
    // The PCP mappings on the external side `m` would take: its external endpoint, or for a
    // one-to-one mapping any on its external address.
    virtual std::vector<PcpMappingView> on_external_side(const common::StaticMapping& m) const = 0;
    // Removes the PCP mappings of the internal side `m` covers (its internal endpoint, or for
    // a one-to-one mapping every one of the subscriber): given back to the NAT and dropped
    // there with their sessions, their removal stored, their clients told.
    virtual PcpWithdrawal withdraw_internal_side(const common::StaticMapping& m) = 0;
};

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
    // Where live static mappings are kept (null: not kept), and PCP's mappings (null: PCP is
    // off). Both are cgnd's and outlive the Controller's use of them.
    void set_store(pcp::MappingStore* store) { store_ = store; }
    void set_pcp(PcpMappings* pcp) { pcp_ = pcp; }
    // The live static mappings the store kept from an earlier run, installed after the
    // configuration's (which win a conflict: the stored one is dropped, with a warning line,
    // as is one that can no longer be installed). Returns the lines for the start-up output.
    std::string restore_stored_static_mappings();

    const common::Config& config() const { return config_; }
    // Whether an operator mapping covers the internal endpoint: a static mapping of it, or a
    // one-to-one mapping of its address (the PCP server may neither take nor delete those).
    bool has_static(uint8_t protocol, common::Ipv4Address addr, uint16_t port) const;

    // Each throws ConfigError (naming the option) when the change is refused.
    void set_timeout(std::string_view which, uint32_t seconds);
    void set_filtering(common::FilteringMode mode);
    void add_pool(const common::Ipv4Prefix& prefix);
    // Returns the PCP mappings it took the place of (see the top of this file).
    PcpWithdrawal add_static(const common::StaticMapping& mapping);
    void remove_static(uint8_t protocol, common::Ipv4Address addr, uint16_t port);

private:
    void publish(std::vector<dp::AddressPool::Extension> pool_additions = {});
    // add_static without its PCP part: refused (before anything changes) when a PCP mapping
    // holds the external side; then the mapping goes in.
    void install_static(const common::StaticMapping& m);
    // add_static's PCP part, once the mapping is in.
    PcpWithdrawal withdraw_pcp_covered(const common::StaticMapping& m);
    bool is_live(const common::StaticMapping& m) const;
    // Removes a live static mapping: from the store first (throws pcp::StoreError, nothing
    // changed then), then from the NAT.
    void remove_live_static(const common::StaticMapping& m);
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
    void apply_static_mappings(const common::Config& next, const Attempt& attempt,
                               std::ostringstream& out);
    bool in_port_range(uint16_t port) const {
        return port >= config_.port_range.first && port <= config_.port_range.last;
    }

    dp::ControlChannel& channel_;
    common::Config config_;
    const dp::Steering& steering_;  // the channel's: the one the workers use
    std::function<std::string()> counters_;
    dp::WhileWaiting while_waiting_;
    std::vector<common::StaticMapping> pending_statics_;
    // The running static mappings (config_.static_mappings) that were added live, not by the
    // configuration; kept in store_ when there is one.
    std::vector<common::StaticMapping> live_statics_;
    pcp::MappingStore* store_ = nullptr;
    PcpMappings* pcp_ = nullptr;
    // Blocks the control thread holds for static mappings: (pool index, block) -> mappings.
    std::map<std::pair<uint32_t, uint32_t>, uint32_t> control_blocks_;
};

}  // namespace cgn::ctl
