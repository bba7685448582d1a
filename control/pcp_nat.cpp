#include "control/pcp_nat.hpp"

#include "dataplane/nat/nat_engine.hpp"

namespace cgn::ctl {

using Status = dp::NatEngine::HoldStatus;
using Kind = dp::WorkerCommand::Kind;

pcp::ResultCode pcp_result(int hold_status) {
    switch (static_cast<Status>(hold_status)) {
        case Status::held:
            return pcp::ResultCode::success;
        case Status::user_ex_quota:
            return pcp::ResultCode::user_ex_quota;
        case Status::cannot_provide_external:
            return pcp::ResultCode::cannot_provide_external;
        case Status::not_authorized:
            return pcp::ResultCode::not_authorized;
        case Status::no_resources:
            break;
    }
    return pcp::ResultCode::no_resources;
}

static_assert(dp::kMaxPeerFilters >= pcp::kMaxFilters,
              "a worker holds every filter the PCP server grants a mapping");

void set_filters(dp::WorkerCommand& command, const std::vector<pcp::Filter>& filters) {
    // RFC 6887 §13.3: the prefix length counts the bits of the IPv6 (here IPv4-mapped, 96 +
    // the IPv4 length) address. The server sends IPv4-mapped filters of 97 to 128 bits, at
    // most kMaxFilters of them; anything else is not a filter a worker could apply.
    command.filter_count = 0;
    for (const pcp::Filter& f : filters) {
        const auto addr = f.remote_address.ipv4();
        if (!addr || f.prefix_length <= 96 || f.prefix_length > 128 ||
            command.filter_count == command.filters.size())
            continue;
        command.filters[command.filter_count++] =
            dp::PeerFilter::prefix(addr->value, f.prefix_length - 96u, f.remote_port);
    }
}

PcpDataplaneNat::PcpDataplaneNat(dp::ControlChannel& channel, StaticQuery is_static)
    : channel_(channel), is_static_(std::move(is_static)) {}

bool PcpDataplaneNat::static_mapping(const pcp::MappingKey& key) {
    return is_static_ && is_static_(key.protocol, key.internal, key.internal_port);
}

bool PcpDataplaneNat::send(const pcp::MappingKey& key, std::unique_ptr<dp::WorkerCommand> command,
                           dp::ControlChannel::Completion done) {
    command->protocol = key.protocol;
    command->addr = key.internal.value;
    command->port = key.internal_port;
    const unsigned owner = channel_.steering().subscriber_owner(key.internal.value);
    if (!channel_.submit(owner, std::move(command), std::move(done))) {
        ++tally_.refused;
        return false;
    }
    ++tally_.submitted;
    return true;
}

void PcpDataplaneNat::submit(const pcp::NatRequest& request) {
    auto command = std::make_unique<dp::WorkerCommand>();
    switch (request.kind) {
        case pcp::NatRequest::Kind::map:
            command->kind = Kind::pcp_hold;
            if (request.suggested) {
                command->addr2 = request.suggested->address.value;
                command->port2 = request.suggested->port;
            }
            command->flags = request.exact ? dp::WorkerCommand::kExact : 0;
            set_filters(*command, request.filters);
            // RFC 7753: a port set, held by the worker as one (result_value: its size).
            command->port_count = request.port_set_size;
            if (request.port_set_parity) command->flags |= dp::WorkerCommand::kParity;
            break;
        case pcp::NatRequest::Kind::peer:
            command->kind = Kind::pcp_peer;
            command->addr2 = request.remote.address.value;
            command->port2 = request.remote.port;
            break;
        case pcp::NatRequest::Kind::external_address:
            command->kind = Kind::pcp_paired_address;
            break;
    }
    const uint64_t id = request.id;
    const bool port_set = request.kind == pcp::NatRequest::Kind::map && request.port_set_size != 0;
    const bool sent =
        send(request.key, std::move(command), [this, id, port_set](const dp::WorkerCommand& c) {
            pcp::Grant g;
            g.result = pcp_result(c.result);
            g.external = {common::Ipv4Address{c.result_addr}, c.result_port};
            if (port_set)
                g.port_set_size = static_cast<uint16_t>(c.result_value);
            else
                g.lifetime = c.result_value;
            answers_.push_back({id, g});
        });
    // RFC 6887 §7.4 NO_RESOURCES: the workers are this far behind; the client retries.
    if (!sent) answers_.push_back({id, pcp::Grant{pcp::ResultCode::no_resources, {}, 0}});
}

void PcpDataplaneNat::release(const pcp::MappingKey& key, const pcp::Endpoint&) {
    auto command = std::make_unique<dp::WorkerCommand>();
    command->kind = Kind::pcp_release;
    // A full backlog loses the release: the mapping stays held in the worker until the
    // subscriber's address is dropped. Counted (refused); 4096 commands behind is far past
    // what the request rate limits allow.
    send(key, std::move(command), {});
}

void PcpDataplaneNat::release_port_set(const pcp::MappingKey& first, const pcp::Endpoint&,
                                       uint16_t size) {
    // One command for the whole set (RFC 7753: it goes as one), not one per port.
    auto command = std::make_unique<dp::WorkerCommand>();
    command->kind = Kind::pcp_release;
    command->port_count = size;
    send(first, std::move(command), {});
}

std::vector<pcp::NatAnswer> PcpDataplaneNat::take_answers() { return std::exchange(answers_, {}); }

}  // namespace cgn::ctl
