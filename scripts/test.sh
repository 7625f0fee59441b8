#!/usr/bin/env bash
# Installs what is missing, builds cloison and runs every test, as root.
# Kernel tests create and remove their own network namespaces; they never
# change the machine's own namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --locked --workspace --all-targets
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace --no-fail-fast -- --test-threads="${CLOISON_TEST_THREADS:-4}"
