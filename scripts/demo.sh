#!/usr/bin/env bash
# Installs what is missing, builds cloison, and runs the multi-host demo:
# three simulated hosts in network namespaces, two tenants on the same subnet.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked -p cloison
exec target/release/cloison lab demo "$@"
