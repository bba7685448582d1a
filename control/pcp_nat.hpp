#pragma once
// The PCP server's NAT (control/pcp/server.hpp, NatControl) in cgnd: each question goes, as a
// worker command (dataplane/io/control_channel.hpp, the pcp_* kinds), to the worker owning
// the subscriber, which answers from its own tables (NatEngine, "PCP"); the answer comes back
// through that worker's done ring and ControlChannel::poll(). Nothing here waits.
//
// Visibility (issue 10 item 1, "a MAP reply is sent only once the mapping is visible to every
// worker"): a PCP mapping lives in the owning worker's mapping table, and its port's block is
// in the shared block map that steers outside packets to that worker. Both are written by the
// owner before it hands the command back (the done ring orders them), so when the answer is
// here every worker already steers the external endpoint to the owner, and the owner finds
// it: no publication (RCU grace period) is needed for it.
//
// Control thread only.

#include <functional>
#include <vector>

#include "control/pcp/server.hpp"
#include "dataplane/io/control_channel.hpp"

namespace cgn::ctl {

struct PcpNatTally {
    uint64_t submitted = 0;  // commands sent to workers
    uint64_t refused = 0;    // the channel's backlog was full: answered NO_RESOURCES at once
};

class PcpDataplaneNat : public pcp::NatControl {
public:
    // `is_static(protocol, internal address, internal port)`: whether an operator mapping
    // (static or one-to-one) covers the internal endpoint (the Controller's configuration).
    using StaticQuery = std::function<bool(uint8_t, common::Ipv4Address, uint16_t)>;
    PcpDataplaneNat(dp::ControlChannel& channel, StaticQuery is_static);

    bool static_mapping(const pcp::MappingKey& key) override;
    void submit(const pcp::NatRequest& request) override;
    void release(const pcp::MappingKey& key, const pcp::Endpoint& external) override;
    void release_port_set(const pcp::MappingKey& first, const pcp::Endpoint& first_external,
                          uint16_t size) override;
    std::vector<pcp::NatAnswer> take_answers() override;

    const PcpNatTally& tally() const { return tally_; }

private:
    bool send(const pcp::MappingKey& key, std::unique_ptr<dp::WorkerCommand> command,
              dp::ControlChannel::Completion done);

    dp::ControlChannel& channel_;
    StaticQuery is_static_;
    std::vector<pcp::NatAnswer> answers_;
    PcpNatTally tally_;
};

// A MAP request's FILTERs (RFC 6887 §13.3) as the worker applies them (WorkerCommand::filters).
void set_filters(dp::WorkerCommand& command, const std::vector<pcp::Filter>& filters);

// A worker's NatEngine::HoldStatus (WorkerCommand::result of a pcp_* kind) as a PCP result
// (RFC 6887 §7.4).
pcp::ResultCode pcp_result(int hold_status);

}  // namespace cgn::ctl
