# Hosts in network namespaces for the experiments (sourced by sh scripts).
# netns_up creates NETNS_HOSTS hosts, each joined to a bridge (in one more
# namespace) by a veth link shaped with tbf to NETNS_RATE in both
# directions; host k has the address $NETNS_SUBNET.(k+1) on interface vh.
# netns_down kills every process in them and removes them; callers trap it.
#
#   NETNS_TAG=vsp$$ NETNS_SUBNET=10.79.0 NETNS_HOSTS=4 NETNS_RATE=100mbit
#   . experiments/common/netns.sh
#   trap netns_down EXIT; netns_up || exit 1
#   netns_exec 0 my_program ...
#   netns_tx_bytes 0        # bytes host 0 has sent so far
#
# Needs root and iproute2. Only addresses in $NETNS_SUBNET.0/24 inside the
# namespaces created here are used.
: "${NETNS_TAG:=lc$$}" "${NETNS_SUBNET:=10.78.0}" "${NETNS_HOSTS:=4}" "${NETNS_RATE:=100mbit}"

netns_hosts() { seq 0 $((NETNS_HOSTS - 1)); }
netns_name() { echo "${NETNS_TAG}_h$1"; }
netns_addr() { echo "$NETNS_SUBNET.$(($1 + 1))"; }
netns_exec() { h="$1"; shift; ip netns exec "$(netns_name "$h")" "$@"; }
netns_tx_bytes() { netns_exec "$1" cat /sys/class/net/vh/statistics/tx_bytes; }

netns_check() {
  [ "$(id -u)" = 0 ] || { echo "netns: needs root (network namespaces, tc)" >&2; return 2; }
  command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1 \
    || { echo "netns: needs iproute2 (ip, tc)" >&2; return 2; }
}

netns_up() {
  netns_check || return $?
  sw="${NETNS_TAG}_sw"
  ip netns add "$sw" || { echo "netns: cannot create network namespaces" >&2; return 1; }
  ip -n "$sw" link add br0 type bridge || return 1
  ip -n "$sw" link set br0 up
  for k in $(netns_hosts); do
    h="$(netns_name "$k")"
    ip netns add "$h" || return 1
    ip -n "$h" link set lo up
    ip -n "$h" link add vh type veth peer name "vs$k" netns "$sw" || return 1
    ip -n "$h" addr add "$(netns_addr "$k")/24" dev vh
    ip -n "$h" link set vh up
    ip -n "$sw" link set "vs$k" master br0 up
    # Both directions of the host's link: its egress, and the bridge port's egress towards it.
    ip netns exec "$h" tc qdisc add dev vh root tbf rate "$NETNS_RATE" burst 64kb latency 100ms \
      || return 1
    ip netns exec "$sw" tc qdisc add dev "vs$k" root tbf rate "$NETNS_RATE" burst 64kb \
      latency 100ms || return 1
  done
  echo "$NETNS_HOSTS hosts, links shaped to $NETNS_RATE both ways (tbf)" >&2
}

netns_down() {
  trap - EXIT INT TERM
  for k in $(netns_hosts); do
    pids=$(ip netns pids "$(netns_name "$k")" 2>/dev/null)
    [ -n "$pids" ] && kill $pids 2>/dev/null
  done
  sleep 0.2
  for k in $(netns_hosts); do
    pids=$(ip netns pids "$(netns_name "$k")" 2>/dev/null)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    ip netns del "$(netns_name "$k")" 2>/dev/null
  done
  ip netns del "${NETNS_TAG}_sw" 2>/dev/null
}
