#!/usr/bin/env bash
# Starts a local mgrplane cluster on 127.0.0.1: one monsim (data in $RUN_DIR)
# and three standby daemons x, y, z. Ctrl-C stops them in order: the active
# hands over first, the standbys leave, monsim stops last. The daemons run in
# their own sessions (setsid) so that Ctrl-C reaches only this script, which
# stops them in that order.
set -euo pipefail
BIN=${BIN:-bin}
RUN_DIR=${RUN_DIR:-.run}
MON_ADDR=${MGRPLANE_MONITOR:-127.0.0.1:6789}
METRICS_ADDR=${MGRPLANE_METRICS_ADDR:-127.0.0.1:6790}
CREDS=$RUN_DIR/monsim/creds
mkdir -p "$RUN_DIR/logs"

# Secure by default: a CA, certificates and a keyring (client.admin and
# mgr.x, mgr.y, mgr.z) made once, where mgrctl looks by default.
if [ ! -e "$CREDS/ca.crt" ]; then
  "$BIN/monsim" creds init --dir "$CREDS" --mgr x,y,z >/dev/null
fi

setsid "$BIN/monsim" --addr "$MON_ADDR" --data-dir "$RUN_DIR/monsim" --creds "$CREDS" \
  --metrics-addr "$METRICS_ADDR" --audit-log "$RUN_DIR/logs/audit.jsonl" >"$RUN_DIR/logs/monsim.log" 2>&1 &
mon_pid=$!
pids=()
i=0
for name in x y z; do
  i=$((i + 1))
  setsid "$BIN/standby" --name "$name" --monitor "$MON_ADDR" --creds "$CREDS" \
    --grpc-addr "127.0.0.1:680$i" --http-addr "127.0.0.1:688$i" >"$RUN_DIR/logs/$name.log" 2>&1 &
  pids+=("$!")
done

stop() {
  trap - INT TERM
  echo
  echo "stopping: the active hands over, standbys leave, then monsim"
  active=$("$BIN/mgrctl" --monitor "$MON_ADDR" --creds "$CREDS" --timeout 2s -o json stat 2>/dev/null | sed -n 's/.*"active_name": *"\([^"]*\)".*/\1/p')
  i=0
  for name in x y z; do
    if [ "$name" = "$active" ]; then kill -TERM "${pids[$i]}" 2>/dev/null || true; wait "${pids[$i]}" 2>/dev/null || true; fi
    i=$((i + 1))
  done
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  kill -TERM "$mon_pid" 2>/dev/null || true
  wait "$mon_pid" 2>/dev/null || true
  echo "stopped; data kept in $RUN_DIR/monsim"
  exit 0
}
trap stop INT TERM

# Wait (at most 10 s) for an active manager, then say where things are.
for _ in $(seq 1 100); do
  if "$BIN/mgrctl" --monitor "$MON_ADDR" --creds "$CREDS" --timeout 1s stat 2>/dev/null | grep -q "available  standbys 2"; then break; fi
  if ! kill -0 "$mon_pid" 2>/dev/null; then echo "monsim exited; see $RUN_DIR/logs/monsim.log" >&2; tail -5 "$RUN_DIR/logs/monsim.log" >&2; exit 1; fi
  sleep 0.1
done
cat <<EON
mgrplane is running on 127.0.0.1:
  monsim     $MON_ADDR (data: $RUN_DIR/monsim, metrics: https://$METRICS_ADDR/metrics)
  standbys   x (gRPC 127.0.0.1:6801, HTTPS 127.0.0.1:6881)
             y (gRPC 127.0.0.1:6802, HTTPS 127.0.0.1:6882)
             z (gRPC 127.0.0.1:6803, HTTPS 127.0.0.1:6883)
  logs       $RUN_DIR/logs/ (audit log: $RUN_DIR/logs/audit.jsonl)
  creds      $CREDS (CA, certificates, keyring: client.admin, mgr.x/y/z)

$("$BIN/mgrctl" --monitor "$MON_ADDR" --creds "$CREDS" stat 2>&1)
$("$BIN/mgrctl" --monitor "$MON_ADDR" --creds "$CREDS" services 2>&1)

Try, in another terminal:  $BIN/mgrctl stat | dump | watch | history | fail | auth ls
                           $BIN/mgrctl module enable prometheus   (then the active's /prometheus/metrics)
                           go tool grpcurl -cacert $CREDS/ca.crt $MON_ADDR list
Press Ctrl-C to stop the cluster.
EON
wait "$mon_pid"
