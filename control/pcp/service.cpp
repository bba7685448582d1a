#include "control/pcp/service.hpp"

#include <set>

#include "control/pcp/natpmp.hpp"

namespace cgn::ctl::pcp {

Service::Service(Server& server, MappingStore* store, const common::Clock& wall)
    : server_(server), store_(store), wall_(wall) {
    if (store_ == nullptr) return;
    const uint64_t now = wall_.now_ms();
    if (const auto start = store_->epoch_start(); start && *start <= now) {
        std::vector<std::pair<MappingKey, PcpMapping>> stored;
        for (auto& s : store_->load()) stored.emplace_back(s.key, std::move(s.mapping));
        // Those whose lifetime ended while cgnd was down are forgotten now; the others are
        // asked of the NAT again, and those it cannot give back are told (serve()).
        for (const Change& c :
             server_.restore(static_cast<uint32_t>((now - *start) / 1000), stored, now))
            store_->erase(c.key);
    } else {
        store_->set_epoch_start(now);
    }
    commit();
    // A NAT that answers at once has answered already (restorations have no answer to send).
    conclude(server_.poll_nat());
}

void Service::tell_gone(const MappingKey& key, const PcpMapping& m) {
    const auto client = m.client.ipv4();
    // RFC 6886 has no message for a mapping taken away (its only unsolicited message is the
    // external address announcement, §3.2.1): a NAT-PMP client learns it at its renewal.
    if (!client || m.natpmp) return;
    // A port set (RFC 7753) is one mapping to its client: told once, through its first port,
    // with the set's PORT_SET, as its answers were.
    if (m.port_set.size != 0 && key.internal_port != m.port_set.first_internal_port) return;
    Response r;
    r.opcode = Opcode::map;
    r.lifetime = 0;
    r.epoch = server_.epoch();
    MapData d;
    d.nonce = m.nonce;
    d.protocol = key.protocol;
    d.internal_port = key.internal_port;
    d.external_port = m.external.port;
    d.external_address = IpAddress::from_ipv4(m.external.address);
    r.map = d;
    // A mapping an operator system asked for another host names that host, as the answers to
    // its requests did (§13.1).
    if (!(*client == key.internal)) r.options.third_party = IpAddress::from_ipv4(key.internal);
    if (m.port_set.size != 0)
        r.options.port_set = PortSet{m.port_set.size, m.port_set.first_internal_port, false};
    Answer a{*client, kClientPort, std::vector<uint8_t>(kMaxMessage), 0};
    a.bytes.resize(encode_response(r, a.bytes));
    unsolicited_.push_back(std::move(a));
}

bool Service::record(const std::vector<Change>& changes) {
    if (store_ == nullptr || changes.empty()) return false;
    const uint64_t now = wall_.now_ms();
    for (const Change& c : changes) {
        const auto it = server_.mappings().find(c.key);
        if (c.kind == Change::Kind::removed || it == server_.mappings().end()) {
            store_->erase(c.key);
            continue;
        }
        PcpMapping stored = it->second;
        stored.expires_ms = server_.wall_expiry(it->second, now);
        store_->put(c.key, stored);
    }
    return true;
}

bool Service::commit() {
    if (store_ == nullptr || store_->queued() == 0) return true;
    try {
        store_->commit();
        return true;
    } catch (const StoreError& e) {
        ++tally_.store_failures;
        store_error_ = e.what();
        return false;
    }
}

std::vector<Answer> Service::serve(std::span<const Received> batch) {
    dropped_tags_.clear();
    std::vector<Outcome> done;
    for (const Received& r : batch) {
        ++tally_.requests;
        Outcome out = server_.handle(r);
        if (!out.pending) done.push_back(std::move(out));
    }
    for (Outcome& o : server_.poll_nat()) done.push_back(std::move(o));
    return conclude(std::move(done));
}

void Service::count_drop(DropReason why) {
    switch (why) {
    case DropReason::not_subscriber: ++tally_.dropped_not_subscriber; break;
    case DropReason::over_rate: ++tally_.dropped_over_rate; break;
    case DropReason::too_many_waiting: ++tally_.dropped_too_many_waiting; break;
    case DropReason::not_a_request: ++tally_.dropped_not_a_request; break;
    case DropReason::none: break;  // every drop names its reason (PcpService tests)
    }
}

std::vector<Answer> Service::conclude(std::vector<Outcome> done) {
    std::vector<Answer> answers;
    std::vector<std::pair<size_t, size_t>> changed;  // (answer, outcome) waiting for the commit
    for (size_t k = 0; k < done.size(); ++k) {
        Outcome& out = done[k];
        if (out.restored || !out.gone.empty()) {
            // A stored mapping taken back, or not (§14.2: its client is told).
            if (out.restored) ++tally_.restored;
            record(out.changes);
            for (const auto& [key, m] : out.gone) tell_gone(key, m);
            continue;
        }
        if (out.reply.empty()) {
            ++tally_.dropped;
            count_drop(out.drop_reason);
            dropped_tags_.push_back(out.tag);
            continue;
        }
        if (record(out.changes)) changed.emplace_back(answers.size(), k);
        answers.push_back(Answer{out.to, out.to_port, std::move(out.reply), out.tag});
    }
    if (!commit()) {
        // Not durable: those answers must not say it is done.
        for (const auto& [a, k] : changed) answers[a].bytes = std::move(done[k].unstored);
    }
    tally_.answered += answers.size();
    return answers;
}

OperatorRemoval Service::remove_by_operator(const Server::OperatorSelection& which) {
    OperatorRemoval out;
    out.removed = server_.remove_by_operator(which);
    std::vector<Change> changes;
    for (const auto& [key, mapping] : out.removed) {
        changes.push_back({Change::Kind::removed, key, mapping.external});
        // RFC 6887 §14.2: the mapping changed without the client asking (here the operator
        // took it away); the server tells the client with an unsolicited MAP response, and
        // its lifetime 0 says the mapping is gone (as a deletion's answer does, §15).
        tell_gone(key, mapping);
    }
    tally_.removed_by_operator += out.removed.size();
    record(changes);
    out.stored = commit();
    return out;
}

Service::Reset Service::reset() {
    Reset out;
    out.removal.removed = server_.reset();
    std::vector<Change> changes;
    // One message per client and kind, whatever number of mappings it had.
    std::set<std::pair<uint32_t, bool>> told;
    for (const auto& [key, mapping] : out.removal.removed) {
        changes.push_back({Change::Kind::removed, key, mapping.external});
        const auto client = mapping.client.ipv4();
        if (!client || !told.emplace(client->value, mapping.natpmp).second) continue;
        Answer a{*client, kClientPort, std::vector<uint8_t>(kMaxMessage), 0};
        if (mapping.natpmp) {
            a.bytes.resize(natpmp::encode_address_response(natpmp::ResultCode::success, 0,
                                                           mapping.external.address.value,
                                                           a.bytes));
        } else {
            Response r;
            r.opcode = Opcode::announce;
            r.epoch = 0;
            a.bytes.resize(encode_response(r, a.bytes));
        }
        unsolicited_.push_back(std::move(a));
    }
    out.clients = told.size();
    tally_.removed_by_operator += out.removal.removed.size();
    record(changes);
    if (store_ != nullptr) store_->set_epoch_start(wall_.now_ms());
    out.removal.stored = commit();
    return out;
}

void Service::expire() {
    const auto gone = server_.expire();
    tally_.expired += gone.size();
    record(gone);
    commit();
}

}  // namespace cgn::ctl::pcp
