#include "control/pcp_daemon.hpp"

#include <rte_errno.h>

#include "common/mbuf_budget.hpp"

#include <cstdio>
#include <sstream>
#include <stdexcept>

namespace cgn::ctl {

namespace {

constexpr size_t kBatch = 64;  // requests served (and stored) together, at most, per step

rte_ring* make_ring(const std::string& name, int socket) {
    rte_ring* r = rte_ring_create(name.c_str(), common::MbufBudget::kPcpRing, socket,
                                  RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (r == nullptr)
        throw std::runtime_error("cannot create the PCP ring " + name + ": " +
                                 rte_strerror(rte_errno));
    return r;
}

std::string protocol_name(uint8_t p) {
    return p == 6 ? "tcp" : p == 17 ? "udp" : std::to_string(p);
}

}  // namespace

pcp::ServerSettings pcp_server_settings(const common::Config& config) {
    const common::PcpConfig& p = config.pcp;
    pcp::ServerSettings s;
    s.subscribers = p.subscribers;
    s.third_party_sources = p.third_party;
    s.min_lifetime = p.min_lifetime_s;
    s.max_lifetime = p.max_lifetime_s;
    s.max_mappings_per_subscriber = p.max_mappings_per_subscriber;
    s.requests_per_second = p.requests_per_second;
    s.request_burst = p.request_burst;
    s.suggestable_ports = p.suggestable_ports;
    return s;
}

PcpDaemon::PcpDaemon(const common::Config& config, dp::ControlChannel& channel, rte_mempool* pool,
                     common::MacAddress inside_mac, int socket,
                     PcpDataplaneNat::StaticQuery is_static, pcp::MappingStore* store)
    : channel_(channel),
      steering_(channel.steering()),
      servers_(config.pcp.servers),
      store_dir_(config.pcp.store),
      store_(store),
      nat_(channel, std::move(is_static)),
      server_(pcp_server_settings(config), nat_, clock_) {
    if (servers_.empty()) servers_.push_back(config.inside_address.address);
    try {
        for (unsigned w = 0; w < channel.workers(); ++w) {
            // One at a time, each kept as soon as it exists, so that a failure frees them all.
            rings_.push_back({make_ring("cgn_pcp_rq" + std::to_string(w), socket), nullptr});
            rings_.back().answers = make_ring("cgn_pcp_an" + std::to_string(w), socket);
        }
    } catch (...) {
        free_rings();
        throw;
    }
    transport_ = std::make_unique<PcpDataplaneTransport>(rings_, pool, inside_mac);
}

PcpDaemon::~PcpDaemon() {
    // The workers have stopped (cgnd frees this after them): what is left on the rings are
    // frames of this process's pool, freed with it.
    transport_.reset();
    free_rings();
}

void PcpDaemon::free_rings() {
    for (auto& r : rings_) {
        rte_ring_free(r.requests);  // null-safe: a pair whose second ring failed
        rte_ring_free(r.answers);
    }
    rings_.clear();
}

std::string PcpDaemon::start() {
    // Restoration (RFC 6887 §14, §8.5): the store's mappings asked of the workers again.
    service_ = std::make_unique<pcp::Service>(server_, store_, wall_);
    std::string servers;
    for (const auto& a : servers_) servers += (servers.empty() ? "" : ", ") + a.to_string();
    std::string line = "cgnd: pcp server at " + servers + " port 5351 (PCP and NAT-PMP), epoch " +
                       std::to_string(server_.epoch()) + " s, ";
    if (store_)
        line += "mappings kept in " + store_dir_ + " (" +
                std::to_string(server_.mappings().size() + server_.waiting()) +
                " stored being restored)\n";
    else
        line += "mappings not kept across restarts (no --pcp-store)\n";
    return line;
}

size_t PcpDaemon::step() {
    if (!service_) return 0;
    size_t work = transport_->serve_once(*service_, kBatch);
    work += send_unsolicited();
    const uint64_t now = clock_.now_ms();
    if (now >= next_expiry_ms_) {
        next_expiry_ms_ = now + 1000;
        service_->expire();
    }
    return work;
}

size_t PcpDaemon::send_unsolicited() {
    size_t sent = 0;
    for (const pcp::Answer& a : service_->take_unsolicited()) {
        // Routed by the worker owning the client's address (any worker reaches the inside).
        transport_->send_unsolicited(a, steering_.subscriber_owner(a.to.value), servers_.front());
        ++sent;
    }
    return sent;
}

// A client's deletion (§15) leaves a mapping to its sessions: given back to the NAT it lives on
// as an ordinary dynamic mapping while they last, and endpoint-independent filtering still
// admits new inbound ones. The operator meant it gone: it goes with its sessions, after the
// release (a worker runs its commands in order; the explicit mapping of an operator that may
// have taken the endpoint is not a dynamic one, and stays).
void PcpDaemon::drop_removed(const pcp::OperatorRemoval& done) {
    for (const auto& [key, mapping] : done.removed) {
        auto command = std::make_unique<dp::WorkerCommand>();
        command->kind = dp::WorkerCommand::Kind::drop_dynamic_mapping;
        command->protocol = key.protocol;
        command->addr = key.internal.value;
        command->port = key.internal_port;
        // A full backlog loses it: the mapping then ends with its sessions, as a client's
        // deletion does.
        channel_.submit(steering_.subscriber_owner(key.internal.value), std::move(command), {});
    }
}

const char* PcpDaemon::help() {
    return "pcp list                               every PCP and NAT-PMP mapping\n"
           "pcp show                               the PCP service's figures\n"
           "pcp del tcp|udp INTERNAL:PORT          remove a PCP mapping; its client is told\n"
           "pcp del subscriber ADDRESS             remove every PCP mapping of a subscriber\n"
           "pcp del external ADDRESS               remove every PCP mapping on a pool address\n"
           "pcp reset                              discard every PCP mapping and restart the\n"
           "                                       epoch; each client is told (ANNOUNCE)\n";
}

std::string PcpDaemon::execute(const std::vector<std::string>& w) {
    if (w.size() == 2 && w[1] == "list") return list();
    if (w.size() == 2 && w[1] == "show") return "ok\n" + counter_lines();
    if (w.size() == 4 && w[1] == "del") return execute_del(w);
    if (w.size() == 2 && w[1] == "reset") return execute_reset();
    return "error: unknown command; 'pcp list', 'pcp show', 'pcp del ...' or 'pcp reset' (see "
           "'help')\n";
}

std::string PcpDaemon::execute_del(const std::vector<std::string>& w) {
    pcp::Server::OperatorSelection which;
    std::string what;
    if (w[2] == "subscriber" || w[2] == "external") {
        const auto address = common::Ipv4Address::parse(w[3]);
        if (!address)
            return "error: invalid value '" + w[3] + "' for pcp del " + w[2] +
                   ": expected an IPv4 address\n";
        (w[2] == "subscriber" ? which.internal : which.external) = *address;
        what = (w[2] == "subscriber" ? "of subscriber " : "on external address ") + w[3];
    } else {
        // The static mapping parser reads "tcp|udp INTERNAL:PORT" given any external endpoint.
        const auto m = common::StaticMapping::parse(w[2] + " " + w[3] + " 0.0.0.0:1");
        if (!m || m->one_to_one())
            return "error: invalid value '" + w[2] + " " + w[3] +
                   "' for pcp del: expected \"tcp|udp INTERNAL:PORT\", \"subscriber ADDRESS\" "
                   "or \"external ADDRESS\"\n";
        which.internal = m->internal_addr;
        which.protocol = m->protocol;
        which.internal_port = m->internal_port;
        what = "of " + w[2] + " " + w[3];
    }
    if (!service_) return "error: the PCP service has not started yet\n";
    const pcp::OperatorRemoval done = service_->remove_by_operator(which);
    drop_removed(done);
    // RFC 6887 §14.2: queued to the worker now, not a loop later, before the reply.
    send_unsolicited();
    if (done.removed.empty()) return "error: no PCP mapping " + what + " (see 'pcp list')\n";
    std::string lines;
    for (const auto& [key, m] : done.removed)
        lines += protocol_name(key.protocol) + " " + key.internal.to_string() + ":" +
                 std::to_string(key.internal_port) + " " + m.external.address.to_string() + ":" +
                 std::to_string(m.external.port) + " client " + m.client.to_string() + "\n";
    const std::string count = std::to_string(done.removed.size()) + " PCP mapping" +
                              (done.removed.size() == 1 ? "" : "s");
    if (!done.stored)
        return "error: " + count + " removed and told, but the removal is not on disk yet (" +
               service_->last_store_error() + "; retried with the next commit)\n" + lines;
    return "ok: " + count + " removed, each client told (RFC 6887 section 14.2)\n" + lines;
}

// RFC 6887 §14.1.3 and §8.5: the state discarded on purpose (after renumbering, say) is state
// lost: the epoch starts again and the clients hear it at once, so that they make their
// mappings again instead of finding out at their next renewal.
std::string PcpDaemon::execute_reset() {
    if (!service_) return "error: the PCP service has not started yet\n";
    const pcp::Service::Reset done = service_->reset();
    drop_removed(done.removal);
    send_unsolicited();
    const std::string what = std::to_string(done.removal.removed.size()) + " PCP mapping" +
                             (done.removal.removed.size() == 1 ? "" : "s") + " discarded, " +
                             std::to_string(done.clients) + " client" +
                             (done.clients == 1 ? "" : "s") + " told, epoch 0";
    if (!done.removal.stored)
        return "error: " + what + ", but not on disk yet (" + service_->last_store_error() +
               "; retried with the next commit)\n";
    return "ok: " + what + " (RFC 6887 section 14.1.3)\n";
}

std::vector<PcpMappingView> PcpDaemon::on_external_side(const common::StaticMapping& m) const {
    pcp::Server::OperatorSelection which;
    which.external = m.external_addr;
    if (!m.one_to_one()) {
        which.protocol = m.protocol;
        which.external_port = m.external_port;
    }
    std::vector<PcpMappingView> out;
    for (const auto& [key, mapping] : server_.selected(which))
        out.push_back({key.protocol, key.internal, key.internal_port, mapping.external.address,
                       mapping.external.port});
    return out;
}

PcpWithdrawal PcpDaemon::withdraw_internal_side(const common::StaticMapping& m) {
    PcpWithdrawal out;
    if (!service_) return out;  // not serving yet: restoration meets the static mapping itself
    pcp::Server::OperatorSelection which;
    which.internal = m.internal_addr;
    if (!m.one_to_one()) {
        which.protocol = m.protocol;
        which.internal_port = m.internal_port;
    }
    const pcp::OperatorRemoval done = service_->remove_by_operator(which);
    drop_removed(done);
    send_unsolicited();
    for (const auto& [key, mapping] : done.removed)
        out.removed.push_back({key.protocol, key.internal, key.internal_port,
                               mapping.external.address, mapping.external.port});
    if (!done.stored) out.store_error = service_->last_store_error();
    return out;
}

std::string PcpDaemon::list() const {
    std::ostringstream out;
    out << "ok " << server_.mappings().size() << " PCP mappings\n";
    const uint64_t now = clock_.now_ms();
    for (const auto& [key, m] : server_.mappings()) {
        out << protocol_name(key.protocol) << " " << key.internal.to_string() << ":"
            << key.internal_port << " " << m.external.address.to_string() << ":" << m.external.port
            << " lifetime " << (m.expires_ms > now ? (m.expires_ms - now) / 1000 : 0)
            << " s client " << m.client.to_string() << (m.natpmp ? " nat-pmp" : "");
        if (!m.filters.empty()) {
            out << " filter";
            // An IPv4 peer's prefix as the operator writes it: PCP counts the 96 bits of the
            // IPv4-mapped form too (RFC 6887 §13.3).
            for (const pcp::Filter& f : m.filters)
                out << " " << f.remote_address.to_string() << "/"
                    << (f.remote_address.is_ipv4() && f.prefix_length > 96
                            ? unsigned{f.prefix_length} - 96u
                            : unsigned{f.prefix_length})
                    << ":" << f.remote_port;
        }
        if (!m.description.empty()) out << " description \"" << m.description << "\"";
        out << "\n";
    }
    return out.str();
}

std::string PcpDaemon::counter_lines() const {
    std::string out;
    char line[96];
    auto add = [&](const char* name, uint64_t v) {
        std::snprintf(line, sizeof line, "%-32s %llu\n", name, static_cast<unsigned long long>(v));
        out += line;
    };
    const PcpTransportTally& t = transport_->tally();
    add("pcp_requests", t.requests);
    add("pcp_malformed_frames", t.malformed);
    add("pcp_answers_queued", t.answers);
    add("pcp_answers_lost", t.answers_lost);
    add("pcp_unsolicited", t.unsolicited);
    if (service_) {
        const pcp::ServiceTally& s = service_->tally();
        add("pcp_answered", s.answered);
        add("pcp_dropped", s.dropped);
        add("pcp_dropped_not_subscriber", s.dropped_not_subscriber);
        add("pcp_dropped_over_rate", s.dropped_over_rate);
        add("pcp_dropped_too_many_waiting", s.dropped_too_many_waiting);
        add("pcp_dropped_not_a_request", s.dropped_not_a_request);
        add("pcp_store_failures", s.store_failures);
        add("pcp_restored", s.restored);
        add("pcp_expired", s.expired);
        add("pcp_removed_by_operator", s.removed_by_operator);
    }
    add("pcp_mappings", server_.mappings().size());
    add("pcp_waiting_for_workers", server_.waiting());
    add("pcp_worker_backlog_full", nat_.tally().refused);
    return out;
}

}  // namespace cgn::ctl
