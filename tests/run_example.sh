#!/bin/sh
# Runs the README example: a coordinator and three peers. Exit 0 if all succeed.
set -eu
chorusd=$1
example=$2
dir=$(mktemp -d)
trap 'kill $cpid 2>/dev/null; rm -rf "$dir"' EXIT
"$chorusd" --bind 127.0.0.1:0 --port-file "$dir/addr" > "$dir/chorusd.log" 2>&1 &
cpid=$!
for i in $(seq 1 100); do [ -s "$dir/addr" ] && break; sleep 0.05; done
addr=$(cat "$dir/addr")
pids=""
for r in 1 2 3; do
  CHORUS_COORDINATOR=$addr CHORUS_EXPECTED_PEERS=3 timeout 60 "$example" 200 > "$dir/peer$r.log" 2>&1 &
  pids="$pids $!"
done
rc=0
for p in $pids; do wait "$p" || rc=1; done
cat "$dir"/peer*.log
exit $rc
