#!/usr/bin/env bash
# Start a multi-node Ray on this one machine: one head plus N worker nodes, each a separate
# raylet with its own CPUs, object store and a custom resource naming it (rlm_node_head,
# rlm_node_w1, ...), so placement and locality can be seen and tested without a second host.
#
#   bash cluster/local/start.sh                 # 1 head + 2 workers on 127.0.0.1:6390
#   RLM_LOCAL_WORKERS=3 RLM_LOCAL_PORT=6400 bash cluster/local/start.sh
#   source /tmp/rlm-ray-local-6390/env          # RAY_ADDRESS + the token for clients
#   bash cluster/local/stop.sh                  # stops exactly these processes
#
# subtle: never `ray stop` here: it kills every Ray of the user (a test suite, a notebook).
# Each node is started by `setsid`, so it and everything it spawns (raylet, GCS, workers,
# whose command lines Ray rewrites to `ray::...`) share one session id; stop.sh kills by those
# session ids, recorded in $STATE/sids, and nothing else. A dedicated --temp-dir keeps this
# cluster's sockets, logs and `ray_current_cluster` file away from /tmp/ray, so
# `ray.init(address="auto")` elsewhere does not find it by accident.
set -euo pipefail

WORKERS="${RLM_LOCAL_WORKERS:-2}"
PORT="${RLM_LOCAL_PORT:-6390}"                       # GCS port of the head
DASHBOARD_PORT="${RLM_LOCAL_DASHBOARD_PORT:-8265}"
CPUS="${RLM_LOCAL_CPUS:-1}"                           # per node
STORE_BYTES="${RLM_LOCAL_OBJECT_STORE_BYTES:-100000000}"  # per node (~100 MB)
STATE="${RLM_LOCAL_DIR:-/tmp/rlm-ray-local-$PORT}"    # short: Unix socket paths max ~107 chars
RAY="${RAY:-ray}"
HOST=127.0.0.1

if [[ -s "$STATE/sids" ]]; then
    echo "error: $STATE/sids exists: a cluster from this directory may be running;" \
        "run cluster/local/stop.sh first (same RLM_LOCAL_PORT / RLM_LOCAL_DIR)" >&2
    exit 1
fi
mkdir -p "$STATE/logs" "$STATE/ray"
: > "$STATE/sids"

# Token auth (Ray >= 2.59): one token for this cluster, kept in $STATE, never in ~/.ray.
# Set RAY_AUTH_MODE=disabled before calling this script to opt out.
export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
if [[ "$RAY_AUTH_MODE" == token ]]; then
    export RAY_AUTH_TOKEN_PATH="$STATE/auth_token"
    if [[ ! -s "$RAY_AUTH_TOKEN_PATH" ]]; then
        (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$RAY_AUTH_TOKEN_PATH")
    fi
fi
# litellm: use the bundled cost map instead of fetching it at import (offline-safe).
export LITELLM_LOCAL_MODEL_COST_MAP=True

# start_node NAME ARGS...: run `ray start ARGS` as the leader of a new session, record the sid.
start_node() {
    local name="$1"
    shift
    if ! setsid --wait bash -c 'echo $$ >> "$0"; exec "$@"' "$STATE/sids" \
        "$RAY" start "$@" > "$STATE/logs/$name.log" 2>&1; then
        echo "error: starting $name failed; see $STATE/logs/$name.log" >&2
        tail -n 20 "$STATE/logs/$name.log" >&2
        exit 1
    fi
    echo "started $name"
}

# subtle: `ray start` replaces --node-ip-address=127.0.0.1 by the host's routable IP, and the
# GCS, agents and client server also listen on that IP (the GCS on all interfaces); only the
# dashboard stays on 127.0.0.1. Token auth (below) is what keeps other hosts and users out.
common=(
    --temp-dir="$STATE/ray"
    --num-cpus="$CPUS"
    --object-store-memory="$STORE_BYTES"
    --disable-usage-stats
)

# Fixed ports, derived from PORT: Ray's default dashboard-agent port (52365) and client port
# (10001) would collide between nodes on one machine and with another Ray on this host.
start_node head --head "${common[@]}" \
    --port="$PORT" \
    --ray-client-server-port=$((PORT + 1)) \
    --dashboard-host="$HOST" --dashboard-port="$DASHBOARD_PORT" \
    --dashboard-agent-listen-port=$((PORT + 10)) \
    --resources='{"rlm_node_head": 1}'

for i in $(seq 1 "$WORKERS"); do
    start_node "worker$i" "${common[@]}" \
        --address="$HOST:$PORT" \
        --dashboard-agent-listen-port=$((PORT + 10 + i)) \
        --resources="{\"rlm_node_w$i\": 1}"
done

{
    echo "export RAY_ADDRESS=$HOST:$PORT"
    echo "export RAY_AUTH_MODE=$RAY_AUTH_MODE"
    if [[ "$RAY_AUTH_MODE" == token ]]; then echo "export RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH"; fi
    echo "export LITELLM_LOCAL_MODEL_COST_MAP=True"
} > "$STATE/env"

echo "Ray on $HOST:$PORT: 1 head + $WORKERS workers, $CPUS CPU each;" \
    "dashboard http://$HOST:$DASHBOARD_PORT"
echo "clients: source $STATE/env   (sets RAY_ADDRESS and the auth token path)"
echo "stop:    RLM_LOCAL_PORT=$PORT bash cluster/local/stop.sh"
