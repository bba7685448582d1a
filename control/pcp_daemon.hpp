#pragma once
// cgnd's PCP (RFC 6887) and NAT-PMP (RFC 6886) service, put together for the control loop:
// the workers' request and answer rings, the transport over them, the service (server and
// store) and the server's NAT over the control channel. One step() serves what arrived and
// what the workers answered, and never waits; the control loop calls it as often as it can.
// The operator's side: "pcp list", "pcp show" and "pcp del" on the control socket, and the
// Controller's static mappings taking the place of PCP mappings (PcpMappings).
//
// Control thread only (it makes the rings; the workers get them through WorkerSettings).

#include <rte_mempool.h>
#include <rte_ring.h>

#include <memory>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/config.hpp"
#include "control/controller.hpp"
#include "control/pcp/service.hpp"
#include "control/pcp/store.hpp"
#include "control/pcp_nat.hpp"
#include "control/pcp_transport.hpp"
#include "dataplane/io/control_channel.hpp"

namespace cgn::ctl {

// The server's settings from cgnd's configuration.
pcp::ServerSettings pcp_server_settings(const common::Config& config);

class PcpDaemon final : public PcpMappings {
public:
    // Makes the rings (one pair per worker, on `socket`). `store`: where the mappings are
    // kept (cgnd opens it from --pcp-store and keeps it open longer than this), or null.
    // start() begins serving.
    PcpDaemon(const common::Config& config, dp::ControlChannel& channel, rte_mempool* pool,
              common::MacAddress inside_mac, int socket, PcpDataplaneNat::StaticQuery is_static,
              pcp::MappingStore* store);
    ~PcpDaemon();
    PcpDaemon(const PcpDaemon&) = delete;
    PcpDaemon& operator=(const PcpDaemon&) = delete;

    // Worker w's rings (for its WorkerSettings).
    rte_ring* requests(unsigned w) const { return rings_[w].requests; }
    rte_ring* answers(unsigned w) const { return rings_[w].answers; }

    // Restores the stored mappings (asked of the workers again: call once they run, and
    // after the operator's static mappings are in). Returns a line for the start-up output.
    std::string start();
    // One step: requests in, answers out, unsolicited messages sent, lifetimes expired
    // (once a second). Returns how much it did (0: idle).
    size_t step();

    // "pcp list" (every PCP mapping), "pcp show" (the service's figures) and "pcp del" (the
    // operator removes mappings; their clients are told, RFC 6887 §14.2) on the control
    // socket; the reply starts with "ok" or "error:".
    std::string execute(const std::vector<std::string>& words);
    // The control socket's help lines for the commands above.
    static const char* help();
    // The service's figures as counter lines ("name value"), for the counters block.
    std::string counter_lines() const;

    // PcpMappings (the Controller's static mappings meeting PCP's).
    std::vector<PcpMappingView> on_external_side(const common::StaticMapping& m) const override;
    PcpWithdrawal withdraw_internal_side(const common::StaticMapping& m) override;

private:
    void free_rings();
    std::string list() const;
    std::string execute_del(const std::vector<std::string>& words);
    std::string execute_reset();
    // Sends the unsolicited messages the service has (RFC 6887 §14); how many.
    size_t send_unsolicited();
    // What is left in the NAT of mappings the operator removed goes, with its sessions.
    void drop_removed(const pcp::OperatorRemoval& done);

    std::vector<PcpDataplaneTransport::WorkerRings> rings_;
    dp::ControlChannel& channel_;
    const dp::Steering& steering_;
    std::vector<common::Ipv4Address> servers_;
    std::string store_dir_;
    common::SteadyClock clock_;
    common::SystemClock wall_;
    pcp::MappingStore* store_;  // cgnd's; may be null
    PcpDataplaneNat nat_;
    pcp::Server server_;
    std::unique_ptr<pcp::Service> service_;  // made by start()
    std::unique_ptr<PcpDataplaneTransport> transport_;
    uint64_t next_expiry_ms_ = 0;
};

}  // namespace cgn::ctl
