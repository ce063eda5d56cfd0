#!/bin/sh
# CI's emulated-WAN run: the ci-short scenario (two datacenters, 20 ms RTT,
# jitter, 0.2% loss, per-flow caps) with Chorus all-reduce on one stream, a
# fixed pool of three and the adaptive pool, every size checked element by
# element. Asserts correctness and the emulated RTT, not speed.
# Exit 77 (skipped) without root, network namespaces or /dev/net/tun.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ "$(id -u)" != 0 ] || [ ! -c /dev/net/tun ] || ! ip netns add cwciprobe 2>/dev/null; then
  echo "skipped: needs root, ip netns and /dev/net/tun"
  exit 77
fi
ip netns del cwciprobe
out=$(mktemp -d /tmp/chorus-wan-ci.XXXXXX)
"$root/tools/chorus-wan/chorus-wan" bench ci-short --sizes 4K,1M,24M --streams 1,3,auto \
  --target-sec 0.5 --timeout 200 --check --out "$out"
rc=$?
[ $rc -ne 0 ] && tail -n 20 "$out"/*.log
rm -rf "$out"
exit $rc
