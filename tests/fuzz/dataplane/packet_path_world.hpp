#pragma once
// The world the packet-path fuzzer runs each input in: two real Workers (classify, steering
// and handoff, NAT engine, fragments, ARP, ICMP errors, hairpin) on ring ports
// (tests/dataplane/harness.hpp), a fixed prelude that gives them state, and the checks that
// abort() on a broken invariant. The fuzz target (packet_path_fuzzer.cpp) and the seed
// generator (packet_path_seeds.cpp) share it, so the seeds are built for the state the fuzzer
// starts from.
//
// Input format (every byte sequence is valid; the parse never fails, it only stops):
//   input  := item*
//   item   := frame | tick
//   frame  := tag:u8 (< 0x80)  length:u16 (big endian, at most kMaxFrame)  bytes[length]
//             tag bit 0: received on the outside port (else inside); bit 1: RX queue 1 (else
//             0, i.e. the worker whose queue it arrives on). A short last frame is cut.
//   tick   := tag:u8 (>= 0x80)  advance:u8
//             the frames given since the last tick are received as one burst per port and
//             queue, the workers are polled until quiet, then the clock moves by
//             advance^2 * 8 ms (0 to 520 s: ARP retransmits, fragment timeouts, session
//             expiry, block hold-down) and the workers are polled until quiet again.
// The input ends with an implicit tick of 0. Then the world is run down (clock moved past
// every hold time) and the invariants are checked.
//
// One world per input (a fresh harness, same seed, same prelude), so an input's outcome
// depends on its bytes only and every crash reproduces from its file.

#include <rte_mempool.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/address.hpp"
#include "common/counters.hpp"
#include "tests/dataplane/harness.hpp"

namespace cgn::fuzz {

// The encoding above, for the seed generator (and tests of the format).
class InputWriter {
public:
    InputWriter& frame(bool outside, unsigned queue, const std::vector<uint8_t>& bytes);
    InputWriter& tick(uint8_t advance = 0);
    const std::vector<uint8_t>& bytes() const { return bytes_; }

private:
    std::vector<uint8_t> bytes_;
};

class PacketPathWorld {
public:
    static constexpr unsigned kWorkers = 2;
    static constexpr size_t kMaxFrame = 2048;  // an mbuf's data room
    static constexpr size_t kMaxFrames = 512;  // per input; the rest is ignored
    static constexpr uint8_t kTickTag = 0x80;
    static constexpr uint64_t kTickUnitMs = 8;

    // A flow the prelude opened: its internal and external endpoints.
    struct Flow {
        uint8_t protocol;
        common::Ipv4Address internal_addr;
        uint16_t internal_port;  // ICMP: the echo identifier
        common::Ipv4Address remote_addr;
        uint16_t remote_port;
        common::Ipv4Address external_addr;
        uint16_t external_port;
    };

    // Builds the harness and runs the prelude: neighbours resolved (two subscribers, one on
    // each worker, and the gateway), a UDP flow, an established TCP connection and an ICMP
    // echo flow per subscriber (flows()[3w .. 3w+2]), and a UDP flow of a third subscriber
    // whose MAC no worker knows (flows()[6]). Counters are zeroed afterwards.
    // `worker_id`: the first worker's id, which names its tables; two worlds alive at once
    // need different ones.
    explicit PacketPathWorld(unsigned worker_id = 100);
    ~PacketPathWorld();

    // Runs one input, then runs the world down and checks every invariant (abort() on a
    // failure, after printing what broke).
    void run(const uint8_t* data, size_t size);

    const test::Topology& topo() const { return harness_->topo(); }
    common::MacAddress inside_mac() const { return harness_->inside().mac(); }
    common::MacAddress outside_mac() const { return harness_->outside().mac(); }
    // The subscriber on worker `w` (and its MAC), and the flows the prelude opened.
    common::Ipv4Address subscriber(unsigned w) const { return subscribers_[w]; }
    common::MacAddress subscriber_mac(unsigned w) const { return subscriber_macs_[w]; }
    const std::vector<Flow>& flows() const { return flows_; }
    common::Ipv4Address silent_subscriber() const {
        return common::Ipv4Address{topo().inside.subnet.address.value | 0x3301};
    }
    // Frames the last run transmitted (kept only when asked: the seed generator prints them).
    void keep_output(bool keep) { keep_output_ = keep; }
    const std::vector<std::vector<uint8_t>>& output() const { return output_; }

private:
    // Polls every worker until kQuietPolls loops in a row move no counter (so the neighbour
    // housekeeping has visited every slot); checks and frees what they sent.
    void poll_until_quiet();
    void inject(bool outside, unsigned queue, const uint8_t* bytes, size_t length);
    void drain_and_check_output();
    void check_output_frame(bool outside, const uint8_t* frame, uint32_t length);
    uint64_t counter_total() const;
    void open_flows();
    // The frame balance (common/frame_accounting.hpp); with `nothing_held`, also that no frame
    // is held any more.
    void check_invariants(bool nothing_held);
    [[noreturn]] void fail(const char* what) const;

    std::unique_ptr<test::DataplaneHarness> harness_;
    // Received frames come from a pool of their own: their buffers are poisoned outside the
    // frame (see poison_outside_frame), which the workers' own mbufs must not be.
    rte_mempool* input_pool_ = nullptr;
    common::Ipv4Address subscribers_[kWorkers];
    common::MacAddress subscriber_macs_[kWorkers];
    std::vector<Flow> flows_;
    unsigned mbufs_free_after_prelude_ = 0;
    bool keep_output_ = false;
    std::vector<std::vector<uint8_t>> output_;
};

// EAL for the process (--no-huge --no-pci, main lcore only), as the dataplane tests do.
void init_eal(const char* program);

}  // namespace cgn::fuzz
