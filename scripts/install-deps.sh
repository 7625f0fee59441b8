#!/usr/bin/env bash
# Installs what cloison needs to build and run on Debian 12, as root:
# the kernel tools the tests drive, the peers the benchmarks compare with,
# and a Rust toolchain when none is present.
set -euo pipefail

packages=(
  ca-certificates curl build-essential pkg-config
  iproute2 iputils-ping util-linux nftables iperf3 procps kmod python3
  containernetworking-plugins podman runc iptables netavark
  etcd-server protobuf-compiler libprotobuf-dev
  docker.io docker-compose busybox-static
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi

# The overlay needs these kernel modules; they load on demand on most kernels.
for m in vxlan bridge veth; do
  modprobe "$m" 2>/dev/null || true
done
