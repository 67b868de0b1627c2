#!/usr/bin/env bash
# `npm run setup`: installs what the tests need beyond `npm ci`, on Debian (or similar), and checks
# each: Debian's chromium (browser tests, never a Playwright download), etcd-server (the consensus
# store tests start their own members), golang-go and cargo (to build the pinned opa and
# tools/wasm-gas: `npm run policy:check`), util-linux and iproute2 (private network and mount
# namespaces), nats-server (the hybrid bus baseline). Packages come from apt-get, as root or through
# sudo; without either it prints the command to run. Safe to run again: it skips what is there.
# .ci/run calls it. Usage: npm run setup [-- --help]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi

log() { printf '[setup] %s\n' "$*"; }

as_root=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then as_root=(sudo); else as_root=(none); fi
fi

# Runs a command as root (directly, or through sudo); does nothing when neither is possible.
privileged() {
  if [ "${as_root[0]:-}" = none ]; then return 0; fi
  "${as_root[@]}" "$@"
}

apt_updated=0
install() { # install <package>... (Debian packages)
  if [ "${as_root[0]:-}" = none ]; then
    log "MISSING: $* — run as root: apt-get install -y --no-install-recommends $*"
    missing=1
    return
  fi
  if [ "$apt_updated" = 0 ]; then privileged apt-get update -qq; apt_updated=1; fi
  log "installing $*"
  privileged env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
missing=0

[ -x /usr/bin/chromium ] || install chromium
if ! [ -x /usr/bin/etcd ]; then
  install etcd-server
  # The tests start their own members on free loopback ports: the packaged service is not needed.
  if command -v systemctl >/dev/null 2>&1; then privileged systemctl disable --now etcd >/dev/null 2>&1 || true; fi
fi
export PATH="$PATH:/usr/local/go/bin:$HOME/.cargo/bin"
command -v go >/dev/null 2>&1 || install golang-go ca-certificates git
command -v cargo >/dev/null 2>&1 || install cargo
{ command -v unshare >/dev/null 2>&1 && command -v ip >/dev/null 2>&1; } || install util-linux iproute2
if ! command -v nats-server >/dev/null 2>&1; then
  install nats-server
  if command -v systemctl >/dev/null 2>&1; then privileged systemctl disable --now nats-server >/dev/null 2>&1 || true; fi
fi

if command -v go >/dev/null 2>&1; then
  # opa v1.22.3's go.mod asks for Go >= 1.26: a Go >= 1.21 fetches that toolchain itself
  # (GOTOOLCHAIN=auto, through the Go module proxy); older ones cannot.
  go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
  if [ "${go_minor:-0}" -lt 21 ]; then
    log "FAIL: building opa needs Go >= 1.21 (it then fetches Go 1.26 itself), found $(go env GOVERSION)"
    exit 1
  fi
  export GOTOOLCHAIN=auto
fi
if command -v go >/dev/null 2>&1 && command -v cargo >/dev/null 2>&1 && [ -d node_modules ]; then
  # Builds opa v1.22.3 into .tools/bin (cached) and tools/wasm-gas, checks the committed bundle.
  npm run --silent policy:check
  log "policy: $(.tools/bin/opa version | head -n 1)"
elif ! [ -d node_modules ]; then
  log "MISSING: node_modules — run npm ci first, then npm run setup again"
  missing=1
fi

report() { # report <name> <command...>
  local name=$1
  shift
  if "$@" >/dev/null 2>&1; then log "ok: $name"; else log "MISSING: $name"; missing=1; fi
}
report "chromium (/usr/bin/chromium)" test -x /usr/bin/chromium
report "etcd (/usr/bin/etcd)" test -x /usr/bin/etcd
report "opa (.tools/bin/opa)" test -x .tools/bin/opa
report "nats-server" nats-server --version
if [ "$(id -u)" = 0 ]; then
  report "private network namespaces (unshare -n)" unshare -n sh -c 'ip link set lo up'
  report "named network namespaces (ip netns)" ip netns list
  report "private mount namespaces (unshare -m)" unshare -m true
else
  log "NOTE: the namespace tests (network partitions, full disk) need root; as a user they are skipped and named"
fi
if [ "$missing" != 0 ]; then
  log "some prerequisites are missing (above): npm test will skip what needs them and name each"
  exit 1
fi
log "every test prerequisite is here"
