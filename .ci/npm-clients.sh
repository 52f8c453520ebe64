#!/usr/bin/env bash
# Third-party clients against `captchafsm simulate`: installs the official
# @2captcha/captcha-solver and the community 2captcha package from npm into
# a temporary directory (never into the repository), starts four simulators
# from the built binary on loopback — one without errors, one answering
# every submit ERROR_NO_SLOT_AVAILABLE, one with an empty balance
# (ERROR_ZERO_BALANCE), one whose tasks all end ERROR_CAPTCHA_UNSOLVABLE —
# and runs internal/npmtest/driver.js, which calls every method both
# clients offer, unchanged but for their base URL.
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
POLL_MS="${NPM_CLIENTS_POLL_MS:-250}" # above 10 s / SPEED, the first-poll minimum of token methods
KEY="0123456789abcdef0123456789abcdef"
OTHER_KEY="fedcba9876543210fedcba9876543210"

for tool in node npm go; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "npm-clients: $tool is not installed"
    exit 77
  fi
done

work=$(mktemp -d)
pids=()
cleanup() {
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
  "$work/captchafsm" simulate --addr 127.0.0.1:0 --speed "$SPEED" --keys "$work/keys.txt" "$@" \
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

for pid in "${pids[@]}"; do
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
pids=()
for name in clean busy empty unsolvable; do
  tail -n1 "$work/$name.log" | sed "s/^/npm-clients: $name: /"
done
if grep -q "[1-9][0-9]* polls too soon" "$work/clean.log"; then
  echo "npm-clients: a client polled sooner than the provider's documented minimums"
  status=1
fi
exit "$status"
