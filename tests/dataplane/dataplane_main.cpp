// EAL once for the whole dataplane test binary: no hugepages, no PCI, main lcore only (the
// tests call Worker::poll_once themselves), no shared config files so runs never collide.

#include <gtest/gtest.h>
#include <rte_eal.h>

#include <cstdio>

int main(int argc, char** argv) {
    testing::InitGoogleTest(&argc, argv);
    const char* eal_argv[] = {"cgn-dataplane-tests",
                              "--no-huge",
                              "--no-pci",
                              "-m",
                              "512",
                              "--no-shconf",
                              "-l",
                              "0",
                              "--log-level=lib.eal:error",
                              "--no-telemetry"};
    if (rte_eal_init(sizeof eal_argv / sizeof eal_argv[0], const_cast<char**>(eal_argv)) < 0) {
        std::fprintf(stderr, "EAL initialisation failed\n");
        return 1;
    }
    const int rc = RUN_ALL_TESTS();
    rte_eal_cleanup();
    return rc;
}
