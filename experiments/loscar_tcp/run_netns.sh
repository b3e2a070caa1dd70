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
here="$(cd "$(dirname "$0")" && pwd)"
NETNS_TAG="lcr$$" NETNS_SUBNET=10.78.0 NETNS_HOSTS=4 NETNS_RATE="${RATE:-100mbit}"
. "$here/../common/netns.sh"
netns_check || exit 2

# The --out folder, to keep the rank logs next to the CSVs.
out="results/loscar_tcp"
prev=""
for a in "$@"; do
  [ "$prev" = "--out" ] && out="$a"
  case "$a" in --out=*) out="${a#--out=}" ;; esac
  prev="$a"
done
mkdir -p "$out" || exit 1

trap netns_down EXIT
trap 'exit 130' INT TERM
netns_up || exit 1

port=29600
for k in $(netns_hosts); do
  ( netns_exec "$k" env OPENBLAS_NUM_THREADS=1 LOCO_RANK=$k LOCO_WORLD_SIZE=4 \
      LOCO_COORDINATOR=10.78.0.1:$port LOCO_TOKEN="loscar-netns-$$" \
      LOCO_LISTEN_HOST=10.78.0.$((k + 1)) LOCO_TIMEOUT_MS=120000 \
      timeout 3600 "$bin" "$@" > "$out/rank$k.log" 2>&1
    echo $? > "$out/rank$k.rc" ) &
done
wait

status=0
cat "$out/rank0.log"
for k in $(netns_hosts); do
  rc=$(cat "$out/rank$k.rc" 2>/dev/null || echo "?")
  rm -f "$out/rank$k.rc"
  if [ "$rc" != 0 ]; then
    echo "run_netns.sh: rank $k exited $rc; its log:" >&2
    sed "s/^/[rank $k] /" "$out/rank$k.log" >&2
    status=1
  fi
done
exit $status
