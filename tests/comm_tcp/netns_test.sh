#!/bin/sh
# 4 hosts in network namespaces, each joined to a bridge (in a fifth
# namespace) by a veth link shaped with tbf, run comm::tcp's conformance suite
# and a shaped allreduce. Only 10.77.0.0/24 addresses inside the namespaces
# created here are used. Skips (exit 77) when not root or namespaces are
# unavailable; always removes what it created.
worker="$1"
[ -x "$worker" ] || { echo "usage: $0 path/to/tcp_worker"; exit 2; }
if [ "$(id -u)" != 0 ]; then echo "SKIP: the netns test needs root"; exit 77; fi
command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 \
  || { echo "SKIP: the netns test needs iproute2 (ip, tc)"; exit 77; }

tag="loco$$"
sw="${tag}_sw"
cleanup() {
  for k in 0 1 2 3; do ip netns del "${tag}_h$k" 2>/dev/null; done
  ip netns del "$sw" 2>/dev/null
}
trap cleanup EXIT INT TERM

ip netns add "$sw" 2>/dev/null || { echo "SKIP: cannot create network namespaces here"; exit 77; }
ip -n "$sw" link add br0 type bridge 2>/dev/null \
  || { echo "SKIP: no bridge support in this kernel"; exit 77; }
ip -n "$sw" link set br0 up
rate=200mbit
for k in 0 1 2 3; do
  h="${tag}_h$k"
  ip netns add "$h" || exit 1
  ip -n "$h" link set lo up
  ip -n "$h" link add vh type veth peer name "vs$k" netns "$sw" || exit 1
  ip -n "$h" addr add "10.77.0.$((k + 1))/24" dev vh
  ip -n "$h" link set vh up
  ip -n "$sw" link set "vs$k" master br0 up
  # Egress shaping on every host's link (tbf; this kernel has no netem).
  ip netns exec "$h" tc qdisc add dev vh root tbf rate $rate burst 64kb latency 100ms \
    || { echo "SKIP: tc tbf unavailable"; exit 77; }
done

# Runs the 4 ranks, one per namespace; fails if any rank fails.
run_checked() {
  port="$1"; shift
  dir=$(mktemp -d)
  for k in 0 1 2 3; do
    ( ip netns exec "${tag}_h$k" env LOCO_RANK=$k LOCO_WORLD_SIZE=4 \
        LOCO_COORDINATOR=10.77.0.1:$port LOCO_TOKEN=netns-test-token \
        LOCO_LISTEN_HOST=10.77.0.$((k + 1)) LOCO_TIMEOUT_MS=20000 \
        timeout 60 "$worker" "$@" > "$dir/out$k" 2>&1; echo $? > "$dir/rc$k" ) &
  done
  wait
  status=0
  for k in 0 1 2 3; do
    sed "s/^/[host $k] /" "$dir/out$k"
    [ "$(cat "$dir/rc$k")" = 0 ] || { echo "host $k exited $(cat "$dir/rc$k")"; status=1; }
  done
  rm -rf "$dir"
  return $status
}

echo "conformance suite over 4 namespaces, links shaped to $rate"
run_checked 29500 conformance || exit 1
# 4 Mi floats = 16 MiB: each rank sends 2*3/4 of it = 24 MiB; at 200 Mbit/s
# (25 MB/s) that takes about 1 s, so finishing under 0.5 s means no shaping.
echo "shaped allreduce of 16 MiB"
run_checked 29501 shaped 4194304 0.5 || exit 1
echo "netns test passed"
