#!/bin/sh
# loco against PyTorch on the same CNN, data and links (docs/experiments/vs_pytorch.md).
#
#   sudo experiments/vs_pytorch/run.sh BUILD_DIR [--out DIR] [--seeds "1 2 3"]
#        [--cpu PCT [--slow-cpu PCT]] [--straggler-ms MS] [--steps N]
#        [--torch "ddp powersgd:1 ..."] [--loco "minibatch ..."]
#   experiments/vs_pytorch/run.sh BUILD_DIR --quick      2 ranks on loopback, a few steps
#
# Each method runs as 4 processes, one per network namespace, joined by links
# shaped to RATE (default 100mbit) both ways, one thread each: PyTorch's
# side is ddp_cnn.py (torch.distributed, gloo), loco's is
# BUILD_DIR/examples/torch_cnn/torch_cnn over comm::tcp. Every run gets the
# same steps per worker, batch, step size and network. The bytes each run put
# on the wire (the hosts' interface counters) go to DIR/bytes.csv; every
# evaluation to DIR/seed<k>/<run>/trace.csv; then summarize.py writes
# DIR/table.md and the plot. Methods already measured in DIR stay: a second
# call with --torch/--loco adds or redoes only those.
#
# Slow workers: --cpu PCT puts every rank in its own CPU cgroup with a quota
# of PCT% of one core (4 ranks at 50% use the 2 cores of the development
# machine without contending), and --slow-cpu PCT gives the last rank that
# quota instead: a worker that is slower and frees nothing for the others.
# --straggler-ms makes the last rank sleep that long in every step instead;
# on a machine with fewer cores than ranks its sleep frees CPU for the
# others, so it hardly slows the run.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-}"
[ -n "$build" ] || { echo "usage: $0 BUILD_DIR [--quick] [--out DIR] ..." >&2; exit 2; }
shift
bin="$build/examples/torch_cnn/torch_cnn"
[ -x "$bin" ] || { echo "run.sh: $bin not found (build the torch_cnn example)" >&2; exit 2; }
py=/usr/bin/python3
"$py" -c "import torch.distributed" 2>/dev/null \
  || { echo "run.sh: needs Debian's python3-torch" >&2; exit 2; }

out="results/vs_pytorch"
seeds="1"
quick=0
straggler=0
cpu=0
slow_cpu=0
steps=1000
evaluations=15
torch_methods="ddp powersgd:1 powersgd:2 powersgd:4 localsgd:4 localsgd:16 localsgd:64 fp16
  localadamw:64"
loco_methods="minibatch local loscar diloco cd_adam"
common="--batch 32 --lr 0.05 --channels 8,16 --hidden 64"
test_rows=2000
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out="$2"; shift ;;
    --seeds) seeds="$2"; shift ;;
    --steps) steps="$2"; shift ;;
    --straggler-ms) straggler="$2"; shift ;;
    --cpu) cpu="$2"; shift ;;
    --slow-cpu) slow_cpu="$2"; shift ;;
    --torch) torch_methods="$2"; shift ;;
    --loco) loco_methods="$2"; shift ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$out" || exit 1
# Appended to, so that a later call can add or redo methods (the last row of
# a run and seed counts).
[ -f "$out/bytes.csv" ] || printf 'run,seed,wire_bytes\n' > "$out/bytes.csv"

# torch method spec "powersgd:2" -> ddp_cnn.py flags
torch_flags() {
  case "$1" in
    powersgd:*) echo "--method powersgd --rank-r ${1#powersgd:}" ;;
    localsgd:*) echo "--method localsgd --period ${1#localsgd:}" ;;
    localadamw:*) echo "--method localadamw --period ${1#localadamw:}" ;;
    *) echo "--method $1" ;;
  esac
}
# ... and the run's name, as ddp_cnn.py writes it in the trace
torch_name() {
  case "$1" in
    powersgd:*) echo "torch_powersgd_r${1#powersgd:}" ;;
    localsgd:*) echo "torch_localsgd_p${1#localsgd:}" ;;
    localadamw:*) echo "torch_localadamw_p${1#localadamw:}" ;;
    *) echo "torch_$1" ;;
  esac
}
# loco method -> its run's name ("powersgd:2" -> powersgd_r2, as torch_cnn names it)
loco_name() {
  case "$1" in
    powersgd:*) echo "powersgd_r${1#powersgd:}" ;;
    *) echo "$1" ;;
  esac
}
# loco method -> torch_cnn flags (H for the methods with local steps; PowerSGD
# every step at rank r, dense for its first 10 steps as ddp_cnn.py's hook)
loco_flags() {
  case "$1" in
    local|loscar) echo "--methods $1 --local-steps 16" ;;
    diloco) echo "--methods $1 --local-steps 64" ;;
    streaming) echo "--methods $1 --local-steps 64 --fragments 4 --overlap 4 --fp4" ;;
    powersgd:*) echo "--methods powersgd --rank ${1#powersgd:} --start-iter 10" ;;
    *) echo "--methods $1" ;;
  esac
}

if [ "$quick" = 1 ]; then
  # Both sides on loopback with 2 ranks: keeps the scripts and binaries working.
  dir="$out/seed1"
  mkdir -p "$dir"
  q="--steps 24 --evaluations 2 --test-rows 500"
  for m in ddp powersgd:1 localsgd:4 fp16 localadamw:4; do
    # shellcheck disable=SC2046
    "$py" "$here/ddp_cnn.py" --spawn 2 $(torch_flags "$m") $common $q \
      --out "$dir/$(torch_name "$m")" || exit 1
  done
  "$here/../../tools/loco-launch" -n 2 -- "$bin" --comm tcp \
    --methods minibatch,local,diloco --local-steps 4 $common $q --out "$dir/loco" || exit 1
  "$py" "$here/summarize.py" "$out" --target 0.3 || exit 1
  exit 0
fi

NETNS_TAG="vsp$$" NETNS_SUBNET=10.79.0 NETNS_HOSTS=4 NETNS_RATE="${RATE:-100mbit}"
. "$here/../common/netns.sh"

# A CPU cgroup per rank (cgroup v1 cpu controller or cgroup v2), when --cpu.
cgroup_of() { [ "$cpu" = 0 ] || echo "$cg_root/${NETNS_TAG}_r$1"; }
cgroups_up() {
  [ "$cpu" = 0 ] && return 0
  last=$((NETNS_HOSTS - 1))
  [ "$slow_cpu" = 0 ] && slow_cpu="$cpu"
  for k in $(netns_hosts); do
    d="$(cgroup_of "$k")"
    pct="$cpu"; [ "$k" = "$last" ] && pct="$slow_cpu"
    mkdir -p "$d" || return 1
    if [ "$cg_v1" = 1 ]; then
      echo 100000 > "$d/cpu.cfs_period_us" && echo $((pct * 1000)) > "$d/cpu.cfs_quota_us" || return 1
    else
      echo "$((pct * 1000)) 100000" > "$d/cpu.max" || return 1
    fi
  done
  echo "CPU quotas: $cpu% of a core per rank, rank $last $slow_cpu%" >&2
}
cgroups_down() {
  [ "$cpu" = 0 ] && return 0
  for k in $(netns_hosts); do rmdir "$(cgroup_of "$k")" 2>/dev/null; done
}
if [ "$cpu" != 0 ]; then
  if [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
    cg_v1=1; cg_root=/sys/fs/cgroup/cpu
  elif grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    cg_v1=0; cg_root=/sys/fs/cgroup
    echo "+cpu" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
  else
    echo "run.sh: --cpu needs a CPU cgroup controller (/sys/fs/cgroup/cpu or cgroup v2)" >&2
    exit 2
  fi
fi
cleanup() { netns_down; cgroups_down; }
trap cleanup EXIT
trap 'exit 130' INT TERM
netns_up || exit 1
cgroups_up || { echo "run.sh: cannot set the CPU quotas" >&2; exit 1; }

wire_bytes() {
  total=0
  for k in $(netns_hosts); do total=$((total + $(netns_tx_bytes "$k"))); done
  echo "$total"
}
# Runs "$@" on the 4 hosts with rank k's environment; logs to $dir/<run>.rank<k>.log.
port=29700
run_4() {
  name="$1"; shift
  port=$((port + 1))
  before=$(wire_bytes)
  for k in $(netns_hosts); do rm -f "$dir/$name.rank$k.rc"; done
  for k in $(netns_hosts); do
    # sh -c: the rank joins its cgroup (if any), then becomes the program.
    ( netns_exec "$k" sh -c '[ -z "$1" ] || echo $$ > "$1/cgroup.procs"; shift; exec "$@"' \
        sh "$(cgroup_of "$k")" env OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 GLOO_SOCKET_IFNAME=vh \
        RANK=$k WORLD_SIZE=4 MASTER_ADDR="$(netns_addr 0)" MASTER_PORT=$port \
        LOCO_RANK=$k LOCO_WORLD_SIZE=4 LOCO_COORDINATOR="$(netns_addr 0):$port" \
        LOCO_TOKEN="vs-pytorch-$$" LOCO_LISTEN_HOST="$(netns_addr "$k")" LOCO_TIMEOUT_MS=120000 \
        timeout 3600 "$@" > "$dir/$name.rank$k.log" 2>&1
      echo $? > "$dir/$name.rank$k.rc" ) &
  done
  # A rank that fails ends the others rather than leaving them to time out.
  while :; do
    left=0
    for k in $(netns_hosts); do
      rc_file="$dir/$name.rank$k.rc"
      if [ ! -s "$rc_file" ]; then left=1
      elif [ "$(cat "$rc_file")" != 0 ]; then
        for j in $(netns_hosts); do
          pids=$(ip netns pids "$(netns_name "$j")" 2>/dev/null)
          [ -n "$pids" ] && kill $pids 2>/dev/null
        done
      fi
    done
    [ "$left" = 0 ] && break
    sleep 1
  done
  wait
  status=0
  for k in $(netns_hosts); do
    rc=$(cat "$dir/$name.rank$k.rc"); rm -f "$dir/$name.rank$k.rc"
    if [ "$rc" != 0 ]; then
      echo "run.sh: $name rank $k exited $rc:" >&2
      tail -20 "$dir/$name.rank$k.log" | sed "s/^/[rank $k] /" >&2
      status=1
    fi
  done
  echo "$name,$seed,$(( $(wire_bytes) - before ))" >> "$out/bytes.csv"
  tail -1 "$dir/$name.rank0.log" >&2
  return $status
}

for seed in $seeds; do
  dir="$out/seed$seed"
  mkdir -p "$dir"
  s="--steps $steps --evaluations $evaluations --test-rows $test_rows --seed $seed"
  s="$s --straggler-ms $straggler $common"
  for m in $torch_methods; do
    echo "seed $seed: torch $m" >&2
    # shellcheck disable=SC2046
    name="$(torch_name "$m")"
    rm -f "$dir/$name/trace.csv"
    run_4 "$name" "$py" "$here/ddp_cnn.py" $(torch_flags "$m") $s --out "$dir/$name" || exit 1
  done
  for m in $loco_methods; do
    echo "seed $seed: loco $m" >&2
    # shellcheck disable=SC2046
    name="$(loco_name "$m")"
    run_4 "$name" "$bin" --comm tcp $(loco_flags "$m") $s --out "$dir/loco_$name" || exit 1
  done
done
"$py" "$here/summarize.py" "$out"
