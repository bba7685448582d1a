// libFuzzer target: a fuzzed sequence of frames and clock ticks through two real workers on
// ring ports (classify, steering and handoff, translation both ways, fragments, ARP, ICMP
// errors, hairpin), every invariant checked after each input. The input format and the
// checks are in packet_path_world.hpp; docs/security.md says how to run it.

#include <cstddef>
#include <cstdint>

#include "tests/fuzz/dataplane/packet_path_world.hpp"

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
    cgn::fuzz::init_eal(*argc > 0 ? (*argv)[0] : "cgn-fuzz-packet-path");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    cgn::fuzz::PacketPathWorld world;
    world.run(data, size);
    return 0;
}
