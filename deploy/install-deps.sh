#!/usr/bin/env bash
# Installs everything cgn needs to build, run the demo and run every test, from Debian 12's
# packages only. Safe to run again. Needs root.
set -euo pipefail

packages=(
  # build
  g++ meson ninja-build pkg-config
  libdpdk-dev libboost-program-options-dev prometheus-cpp-dev libgtest-dev libgmock-dev
  liblmdb-dev
  # the libFuzzer target (tests/fuzz): clang, its sanitizer and fuzzer runtimes, the symbolizer
  clang-14 libclang-rt-14-dev llvm-14
  # demo and end-to-end tests: namespaces, veths, real Linux traffic, pytest
  iproute2 iputils-ping ethtool procps python3 python3-pytest
  # a time limit per end-to-end test, so that one that hangs fails by name instead of using up
  # the run
  python3-pytest-timeout
  # the control socket examples of the README
  socat
  # the PCP tests: every response the server sends decoded by Wireshark's dissector, from
  # captures written with libpcap
  tshark libpcap-dev
  # NAT-PMP (RFC 6886) through cgnd with a real client (tests/e2e/test_pcp.py)
  natpmpc
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (apt-get install)" >&2
  exit 1
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi
