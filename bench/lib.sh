# Shared by the bench scripts: alternate contenders, time them, print medians;
# crun's hugetlb workaround for this machine (hugetlb_v1_on/off).
# A script defines run_<name> DIR for each name in "contenders", sets N and
# tmp, then calls bench_loop and bench_medians (which fills "med"). An
# optional bench_prepare NAME DIR runs before each timed run, untimed.

now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a - b}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

declare -A times med

# Each iteration starts with the next contender, so drift hits all alike.
# The timed region ends with sync(1): berth makes each snapshot durable
# (syncfs) before publishing it, tar and umoci leave dirty pages behind;
# timing until the data is on disk charges every contender its writeback.
bench_loop() {
  local i k c d t0 dt
  for c in "${contenders[@]}"; do times[$c]=""; done
  for i in $(seq "$N"); do
    k=$(((i - 1) % ${#contenders[@]}))
    for c in "${contenders[@]:$k}" "${contenders[@]:0:$k}"; do
      d="$tmp/$c-$i"
      if declare -F bench_prepare >/dev/null; then bench_prepare "$c" "$d"; fi
      sync
      t0=$(now)
      "run_$c" "$d" || { echo "bench: $c failed in iteration $i" >&2; exit 1; }
      sync
      dt=$(sub "$(now)" "$t0")
      times[$c]+="$dt "
      printf 'iter %d %-12s %6.2f s\n' "$i" "$c" "$dt"
      rm -rf "$d"
    done
  done
}

bench_medians() {
  local c
  echo
  for c in "${contenders[@]}"; do
    med[$c]=$(echo "${times[$c]}" | median)
    printf 'median %-12s %6.2f s   (%s)\n' "$c" "${med[$c]}" "${times[$c]}"
  done
}

# The set-up of the container benches: dependencies, the fixture registry,
# a release berth in $BERTH (built where CARGO_TARGET_DIR says), the
# fixture's busybox in $IMAGE.
bench_berth() {
  scripts/install-deps.sh >/dev/null
  bash fixture/registry.sh up >/dev/null
  cargo build --release -p berth
  BERTH="${CARGO_TARGET_DIR:-$PWD/target}/x86_64-unknown-linux-gnu/release/berth"
  IMAGE=127.0.0.1:5500/busybox:latest
}

# crun refuses hybrid cgroups while cgroup2 owns hugetlb (shared PEERS notes):
# hugetlb_v1_on mounts hugetlb as v1 for the run, hugetlb_v1_off undoes it.
hugetlb_undo=""
hugetlb_v1_on() {
  if [ -d /sys/fs/cgroup/unified ] && grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null \
     && [ ! -d /sys/fs/cgroup/hugetlb ]; then
    mkdir /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb && hugetlb_undo=1
  fi
}
hugetlb_v1_off() {
  if [ -n "$hugetlb_undo" ]; then
    find /sys/fs/cgroup/hugetlb -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
    umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb
  fi
}
