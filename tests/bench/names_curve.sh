#!/bin/bash
# names_curve.sh SKYPIPE CHURN DIR N... : what pipe names cost a satellite,
# for comparing two builds (BENCHMARKS.md, issue 11: a stream a name against
# one stream). One fresh satellite of SKYPIPE, store in DIR; after each total
# N of distinct names kept and taken (CHURN: go build ./tests/churn/cmd/churn,
# of the same tree as SKYPIPE): RSS, open files, store, ls time; then a
# restart on the store (stop = SIGTERM) and the time to ready and to the
# next ls. Needs xxd and bc.
#
#   tests/bench/names_curve.sh ./skypipe ./churn /tmp/curve 1000 10000 100000
set -u
bin=$1 churn=$2 dir=$3; shift 3
rm -rf "$dir"; mkdir -p "$dir"; cd "$dir"
head -c 32 /dev/urandom | xxd -p -c 64 > tok; chmod 600 tok
start() {
  t0=$(date +%s.%N)
  SKYPIPE_TOKEN_FILE=$dir/tok XDG_CONFIG_HOME=$dir/cfg XDG_DATA_HOME=$dir/data "$bin" serve --listen 127.0.0.1:${port:-0} --store "$dir/store" --ready > ready.txt 2>>sat.err &
  pid=$!
  until grep -q ready ready.txt 2>/dev/null; do sleep 0.01; kill -0 $pid 2>/dev/null || { echo "satellite died"; exit 1; }; done
  ready=$(echo "$(date +%s.%N) - $t0" | bc)
  port=$(sed 's#.*:##' ready.txt)
  export SKYPIPE_URL=$(sed "s#ready nats://#nats://$(cat tok)@#" ready.txt)
}
lstime() { t0=$(date +%s.%N); XDG_CONFIG_HOME=$dir/cfg "$bin" ls > /dev/null 2>ls.err || echo "ls failed: $(cat ls.err)"; echo "$(date +%s.%N) - $t0" | bc; }
start
echo "fresh: RSS $(grep VmRSS /proc/$pid/status | awk '{print $2}') kB fds $(ls /proc/$pid/fd | wc -l)"
done_n=0
for n in "$@"; do
  "$churn" -rounds $((n - done_n)) -workers 4 -name "b$n-%d" || exit 1
  done_n=$n
  sleep 1
  echo "after $n names: RSS $(grep VmRSS /proc/$pid/status | awk '{print $2}') kB fds $(ls /proc/$pid/fd | wc -l) store $(du -sk store | cut -f1) kB ls $(lstime) s"
  kill -TERM $pid; wait $pid
  start
  echo "  restart: ready in $ready s; next ls $(lstime) s; RSS $(grep VmRSS /proc/$pid/status | awk '{print $2}') kB"
done
kill -TERM $pid; wait $pid
