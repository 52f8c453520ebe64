#!/usr/bin/env bash
# Third-party clients against `captchafsm simulate` and `captchafsm
# gateway`: installs the official @2captcha/captcha-solver and the community
# 2captcha package from npm into a temporary directory (never into the
# repository), starts four simulators from the built binary on loopback —
# one without errors, one answering every submit ERROR_NO_SLOT_AVAILABLE,
# one with an empty balance (ERROR_ZERO_BALANCE), one whose tasks all end
# ERROR_CAPTCHA_UNSOLVABLE — and runs internal/npmtest/driver.js, which
# calls every method both clients offer, unchanged but for their base URL.
#
# Then the gateway: a fifth simulator answers NO_SLOT to 30% of submits
# and UNSOLVABLE to 25% of tasks (at speed 20), a gateway runs in front of it, and the
# driver (MODE=gateway) calls every method of both clients through the
# gateway — each must return a token — then kills the gateway with SIGKILL
# while solves are in flight, restarts it on the same address, and those
# solves must return tokens too. Before that, the JavaScript snippets of
# the README and docs/gateway.md run as written against the gateway
# (internal/npmtest/snippets.js).
#
# The simulators enforce the provider's rate rules and poll timing; --speed
# divides solve times and the timing minimums so that the run takes seconds.
#
# Exit status: 0 all passed; 1 a check failed; 77 node, npm or the npm
# registry is not available (the Go test skips on 77; CI fails on it).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

OFFICIAL="@2captcha/captcha-solver@1.3.9"
COMMUNITY="2captcha@3.0.7"
SPEED="${NPM_CLIENTS_SPEED:-50}"
GW_SPEED="${NPM_CLIENTS_GATEWAY_SPEED:-20}" # the gateway's simulator (its policy below is scaled to 20)
POLL_MS="${NPM_CLIENTS_POLL_MS:-250}" # above 10 s / SPEED, the first-poll minimum of token methods
KEY="0123456789abcdef0123456789abcdef"
OTHER_KEY="fedcba9876543210fedcba9876543210"
GW_KEY="0a1b2c3d4e5f60718293a4b5c6d7e8f9" # the driver's local key at the gateway

for tool in node npm go; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "npm-clients: $tool is not installed"
    exit 77
  fi
done

work=$(mktemp -d)
pids=()
cleanup() {
  if [ -s "$work/gateway.pid" ]; then
    pids+=("$(cat "$work/gateway.pid")")
  fi
  for pid in "${pids[@]}"; do
    kill -INT "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

echo "npm-clients: building captchafsm"
go build -o "$work/captchafsm" ./cmd/captchafsm

echo "npm-clients: installing $OFFICIAL and $COMMUNITY into a temporary directory"
if ! (cd "$work" && npm init -y >/dev/null &&
  npm install --no-audit --no-fund --ignore-scripts --loglevel=error \
    --fetch-retries=2 --fetch-timeout=30000 "$OFFICIAL" "$COMMUNITY"); then
  echo "npm-clients: npm install failed (is the registry reachable?)"
  exit 77
fi

printf '# the driver'"'"'s key\ndriver %s\n' "$KEY" >"$work/keys.txt"
echo '{"submit":{},"poll":{}}' >"$work/clean.json"
echo '{"submit":{"ERROR_NO_SLOT_AVAILABLE":1},"poll":{}}' >"$work/busy.json"
echo '{"submit":{},"poll":{"ERROR_CAPTCHA_UNSOLVABLE":1}}' >"$work/unsolvable.json"

# start NAME VAR ARGS...: runs a simulator and sets VAR to its URL (the
# first line on its stdout). Not in a subshell: pids must keep its PID.
start() {
  local name=$1 var=$2
  shift 2
  "$work/captchafsm" simulate --addr 127.0.0.1:0 --speed "${SIM_SPEED:-$SPEED}" --keys "$work/keys.txt" "$@" \
    >"$work/$name.url" 2>"$work/$name.log" &
  pids+=($!)
  for _ in $(seq 100); do
    if [ -s "$work/$name.url" ]; then
      printf -v "$var" '%s' "$(head -n1 "$work/$name.url")"
      return
    fi
    sleep 0.1
  done
  echo "npm-clients: simulator $name did not start:" >&2
  cat "$work/$name.log" >&2
  exit 1
}

start clean CLEAN_URL --mix "$work/clean.json"
start busy BUSY_URL --mix "$work/busy.json"
start empty EMPTY_URL --mix "$work/clean.json" --balance 0
start unsolvable UNSOLVABLE_URL --mix "$work/unsolvable.json"
echo "npm-clients: simulators at $CLEAN_URL $BUSY_URL $EMPTY_URL $UNSOLVABLE_URL (speed $SPEED)"

status=0
NODE_PATH="$work/node_modules" CLEAN_URL="$CLEAN_URL" BUSY_URL="$BUSY_URL" EMPTY_URL="$EMPTY_URL" \
  UNSOLVABLE_URL="$UNSOLVABLE_URL" KEY="$KEY" OTHER_KEY="$OTHER_KEY" POLL_MS="$POLL_MS" \
  node internal/npmtest/driver.js || status=$?

# The gateway, in front of a simulator that answers NO_SLOT and
# UNSOLVABLE often. Its policy is the provider's timing divided by 20
# (GW_SPEED), with room for the engine's batch window (a fifth of
# poll_interval early).
echo '{"submit":{"ERROR_NO_SLOT_AVAILABLE":0.3},"poll":{"ERROR_CAPTCHA_UNSOLVABLE":0.25}}' >"$work/flaky.json"
SIM_SPEED="$GW_SPEED" start flaky FLAKY_URL --mix "$work/flaky.json"
printf '%s\n' "$KEY" >"$work/upstream.key"
printf '# the driver, a local client of the gateway\nnpm-driver %s\n' "$GW_KEY" >"$work/gateway-keys.txt"
cat >"$work/gateway-policy.json" <<POLICY
{"first_poll_delay": "350ms", "first_poll_delay_token": "650ms", "poll_interval": "350ms", "poll_timeout": "30s",
 "backoff_base": "100ms", "backoff_max": "500ms", "max_retries": 30, "max_resubmits": 30, "request_timeout": "5s",
 "retry_delays": {"ERROR_NO_SLOT_AVAILABLE": "250ms", "MAX_USER_TURN": "500ms"}}
POLICY
gateway_args=(gateway --keys "$work/gateway-keys.txt" --db "$work/gateway.db" --api-url "$FLAKY_URL"
  --key-file "$work/upstream.key" --policy "$work/gateway-policy.json" --log-level warn)
"$work/captchafsm" "${gateway_args[@]}" --addr 127.0.0.1:0 >"$work/gateway.url" 2>"$work/gateway.log" &
echo $! >"$work/gateway.pid"
for _ in $(seq 100); do
  [ -s "$work/gateway.url" ] && break
  sleep 0.1
done
if [ ! -s "$work/gateway.url" ]; then
  echo "npm-clients: the gateway did not start:" >&2
  cat "$work/gateway.log" >&2
  exit 1
fi
GATEWAY_URL=$(head -n1 "$work/gateway.url")
gateway_cmd=$(node -e 'console.log(JSON.stringify(process.argv.slice(1)))' -- \
  "$work/captchafsm" "${gateway_args[@]}" --addr "${GATEWAY_URL#http://}")
echo "npm-clients: gateway at $GATEWAY_URL in front of $FLAKY_URL (speed $GW_SPEED)"
# The JavaScript snippets of the README and docs/gateway.md, run as a user
# pasting them into a file would, against this gateway.
NODE_PATH="$work/node_modules" GATEWAY_URL="$GATEWAY_URL" GATEWAY_KEY="$GW_KEY" WORK="$work" \
  DOCS="README.md docs/gateway.md" node internal/npmtest/snippets.js || status=$?

NODE_PATH="$work/node_modules" MODE=gateway GATEWAY_URL="$GATEWAY_URL" GATEWAY_KEY="$GW_KEY" \
  GATEWAY_PID="$(cat "$work/gateway.pid")" GATEWAY_CMD="$gateway_cmd" GATEWAY_PIDFILE="$work/gateway.pid" \
  OTHER_KEY="$OTHER_KEY" POLL_MS="$POLL_MS" node internal/npmtest/driver.js || status=$?

pids+=("$(cat "$work/gateway.pid")")
for pid in "${pids[@]}"; do
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
pids=()
rm -f "$work/gateway.pid"
for name in clean busy empty unsolvable flaky; do
  tail -n1 "$work/$name.log" | sed "s/^/npm-clients: $name: /"
done
for name in clean flaky; do
  if grep -q "[1-9][0-9]* polls too soon" "$work/$name.log"; then
    echo "npm-clients: $name: a client polled sooner than the provider's documented minimums"
    status=1
  fi
done
exit "$status"
