#!/bin/sh
# Test "hosts" as network namespaces on one bridge.
#   netns.sh up PREFIX N SUBNET          namespaces PREFIX0..N-1 at SUBNET.1..N,
#                                        the bridge PREFIXbr at SUBNET.254
#   netns.sh throttle PREFIX SUBNET A B RATE   limit A<->B (both directions) to RATE
#   netns.sh down PREFIX N               remove everything (also after a crash)
# Needs root and iproute2 (ip, tc); htb classes with u32 filters per
# destination so only the chosen pair is slow.
set -eu
cmd=$1
prefix=$2
case "$cmd" in
  up)
    n=$3
    net=$4
    ip link add "${prefix}br" type bridge
    ip addr add "${net}.254/24" dev "${prefix}br"
    ip link set "${prefix}br" up
    i=0
    while [ "$i" -lt "$n" ]; do
      ip netns add "${prefix}$i"
      ip link add "${prefix}v$i" type veth peer name eth0 netns "${prefix}$i"
      ip link set "${prefix}v$i" master "${prefix}br" up
      ip -n "${prefix}$i" addr add "${net}.$((i + 1))/24" dev eth0
      ip -n "${prefix}$i" link set eth0 up
      ip -n "${prefix}$i" link set lo up
      ip netns exec "${prefix}$i" tc qdisc add dev eth0 root handle 1: htb default 10 r2q 1000
      ip netns exec "${prefix}$i" tc class add dev eth0 parent 1: classid 1:10 htb rate 20gbit 2>/dev/null
      i=$((i + 1))
    done
    ;;
  throttle)
    net=$3
    a=$4
    b=$5
    rate=$6
    for pair in "$a $b" "$b $a"; do
      set -- $pair
      cls=$((20 + $2))
      ip netns exec "${prefix}$1" tc class add dev eth0 parent 1: classid "1:$cls" htb rate "$rate"
      ip netns exec "${prefix}$1" tc filter add dev eth0 protocol ip parent 1: prio 1 u32 \
        match ip dst "${net}.$(($2 + 1))/32" flowid "1:$cls"
    done
    ;;
  down)
    n=$3
    i=0
    while [ "$i" -lt "$n" ]; do
      ip netns del "${prefix}$i" 2>/dev/null || true
      i=$((i + 1))
    done
    ip link del "${prefix}br" 2>/dev/null || true
    ;;
  *)
    echo "usage: $0 up|throttle|down ..." >&2
    exit 2
    ;;
esac
