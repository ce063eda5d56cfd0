#!/usr/bin/env bash
# Installs everything a fresh Debian 12 machine lacks to build and test Chorus.
# Idempotent: packages already present are skipped by apt, and apt-get update
# runs only when a package is missing.
set -euo pipefail

PKGS=(
  build-essential cmake ninja-build pkg-config git
  libasio-dev        # standalone Asio: sockets, resolver, acceptor, timers
  libssl-dev         # OpenSSL: HMAC-SHA256 challenge-response, random nonces, TLS 1.3
  libgtest-dev       # GoogleTest
  libcli11-dev       # CLI11: command-line parsing for the tools
  libxxhash-dev      # xxHash: result and state hashes
  libisal-dev        # Intel ISA-L: Reed-Solomon erasure coding of snapshots
  iproute2 procps psmisc   # ip netns / ss / pkill for fault tests
  util-linux mount   # unshare / nsenter / mount: a private small /dev/shm in Shm tests
  python3            # tools/chorus-wan (the WAN emulator; its CI scenario is a test)
  openssl            # CLI: the TLS tests make a throwaway CA and certificates
)
# Peers we measure against in docs/PERFORMANCE.md (not needed to build or test).
if [[ "${CHORUS_WITH_PEERS:-0}" == 1 ]]; then
  PKGS+=(libgloo-dev openmpi-bin libopenmpi-dev iperf3 python3-matplotlib)
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  echo "[install-deps] installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "[install-deps] all packages present"
fi
