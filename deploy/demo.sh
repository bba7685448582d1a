#!/usr/bin/env bash
# The demo: installs what is missing, builds, then runs cgnd in a topology of network
# namespaces (two subscribers in 100.64.0.0/10, two outside hosts on 192.0.2.0/24, pool
# 198.51.100.0/29), sends real ping, TCP, UDP and a fragmented ping through it and shows what
# the outside saw. cgnd uses net_af_xdp with one worker (default), net_af_packet with several
# (see deploy/demo.py --help: net_af_packet cannot pass a fragmented datagram larger than a frame).
# The topology is removed when the demo ends or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
bash deploy/build.sh build
exec /usr/bin/python3 deploy/demo.py "$@"
