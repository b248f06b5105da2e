#!/usr/bin/env bash
# Stop exactly the Ray started by cluster/local/start.sh (same RLM_LOCAL_PORT / RLM_LOCAL_DIR):
# every process in the sessions recorded in $STATE/sids gets SIGTERM, then SIGKILL after a grace
# period. No `ray stop`, no pkill: other Ray sessions on this machine are left alone.
set -euo pipefail

PORT="${RLM_LOCAL_PORT:-6390}"
STATE="${RLM_LOCAL_DIR:-/tmp/rlm-ray-local-$PORT}"
GRACE_S="${RLM_LOCAL_STOP_GRACE_S:-10}"

if [[ ! -f "$STATE/sids" ]]; then
    echo "nothing to stop: no $STATE/sids" >&2
    exit 0
fi
mapfile -t sids < <(grep -E '^[0-9]+$' "$STATE/sids" || true)

# members: live pids whose session id is one of ours (never this shell's own session).
# subtle: zombies (stat Z) are already dead and wait for their reaper (PID 1 here, which may
# reap late); counting them would make a finished stop look like a failure.
members() {
    local own
    own="$(ps -o sid= -p $$ | tr -d ' ')"
    ps -eo pid=,sid=,stat= | while read -r pid sid stat; do
        [[ "$sid" == "$own" || "$stat" == Z* ]] && continue
        for s in "${sids[@]}"; do
            if [[ "$sid" == "$s" ]]; then echo "$pid"; fi
        done
    done
}

mapfile -t pids < <(members)
if ((${#pids[@]})); then
    echo "stopping ${#pids[@]} processes of sessions ${sids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 1 $((GRACE_S * 5))); do
        mapfile -t pids < <(members)
        ((${#pids[@]})) || break
        sleep 0.2
    done
    if ((${#pids[@]})); then
        echo "SIGKILL to ${#pids[@]} processes left after ${GRACE_S}s"
        kill -KILL "${pids[@]}" 2>/dev/null || true
        sleep 0.5
    fi
fi

mapfile -t pids < <(members)
if ((${#pids[@]})); then
    echo "error: still running: ${pids[*]}" >&2
    exit 1
fi
rm -f "$STATE/sids" "$STATE/env"
echo "stopped; logs kept in $STATE/ray and $STATE/logs"
