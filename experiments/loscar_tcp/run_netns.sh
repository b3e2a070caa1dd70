#!/bin/sh
# Runs loscar_tcp on 4 hosts in network namespaces, each joined to a bridge
# (in a fifth namespace) by a veth link shaped with tbf to RATE in both
# directions (default 100mbit), one rank per host. Rank 0's report goes to
# stdout; every rank's log stays in the --out folder given to loscar_tcp
# (default results/loscar_tcp) as rank<k>.log.
#
#   sudo experiments/loscar_tcp/run_netns.sh build/experiments/loscar_tcp/loscar_tcp \
#        --model softmax --out results/loscar_tcp
#
# Only 10.78.0.0/24 addresses inside the namespaces created here are used.
# Needs root and iproute2; the namespaces and every process in them are
# removed on exit, on failure and on Ctrl-C.
set -u
bin="${1:-}"
[ -n "$bin" ] && [ -x "$bin" ] || { echo "usage: $0 path/to/loscar_tcp [loscar_tcp flags...]" >&2; exit 2; }
shift
rate="${RATE:-100mbit}"
[ "$(id -u)" = 0 ] || { echo "run_netns.sh: needs root (network namespaces, tc)" >&2; exit 2; }
command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 \
  || { echo "run_netns.sh: needs iproute2 (ip, tc)" >&2; exit 2; }

# The --out folder, to keep the rank logs next to the CSVs.
out="results/loscar_tcp"
prev=""
for a in "$@"; do
  [ "$prev" = "--out" ] && out="$a"
  case "$a" in --out=*) out="${a#--out=}" ;; esac
  prev="$a"
done
mkdir -p "$out" || exit 1

tag="lcr$$"
sw="${tag}_sw"
hosts="0 1 2 3"
cleanup() {
  trap - EXIT INT TERM
  for k in $hosts; do
    pids=$(ip netns pids "${tag}_h$k" 2>/dev/null)
    [ -n "$pids" ] && kill $pids 2>/dev/null
  done
  sleep 0.2
  for k in $hosts; do
    pids=$(ip netns pids "${tag}_h$k" 2>/dev/null)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    ip netns del "${tag}_h$k" 2>/dev/null
  done
  ip netns del "$sw" 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ip netns add "$sw" || { echo "run_netns.sh: cannot create network namespaces" >&2; exit 1; }
ip -n "$sw" link add br0 type bridge || exit 1
ip -n "$sw" link set br0 up
for k in $hosts; do
  h="${tag}_h$k"
  ip netns add "$h" || exit 1
  ip -n "$h" link set lo up
  ip -n "$h" link add vh type veth peer name "vs$k" netns "$sw" || exit 1
  ip -n "$h" addr add "10.78.0.$((k + 1))/24" dev vh
  ip -n "$h" link set vh up
  ip -n "$sw" link set "vs$k" master br0 up
  # Both directions of the host's link: its egress, and the bridge port's egress towards it.
  ip netns exec "$h" tc qdisc add dev vh root tbf rate "$rate" burst 64kb latency 100ms || exit 1
  ip netns exec "$sw" tc qdisc add dev "vs$k" root tbf rate "$rate" burst 64kb latency 100ms || exit 1
done
echo "4 hosts, links shaped to $rate both ways (tbf)" >&2

port=29600
for k in $hosts; do
  ( ip netns exec "${tag}_h$k" env OPENBLAS_NUM_THREADS=1 LOCO_RANK=$k LOCO_WORLD_SIZE=4 \
      LOCO_COORDINATOR=10.78.0.1:$port LOCO_TOKEN="loscar-netns-$$" \
      LOCO_LISTEN_HOST=10.78.0.$((k + 1)) LOCO_TIMEOUT_MS=120000 \
      timeout 3600 "$bin" "$@" > "$out/rank$k.log" 2>&1
    echo $? > "$out/rank$k.rc" ) &
done
wait

status=0
cat "$out/rank0.log"
for k in $hosts; do
  rc=$(cat "$out/rank$k.rc" 2>/dev/null || echo "?")
  rm -f "$out/rank$k.rc"
  if [ "$rc" != 0 ]; then
    echo "run_netns.sh: rank $k exited $rc; its log:" >&2
    sed "s/^/[rank $k] /" "$out/rank$k.log" >&2
    status=1
  fi
done
exit $status
