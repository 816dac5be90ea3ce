#!/usr/bin/env bash
# Makes a fresh Debian machine (as root) ready to run sKnock: the Debian
# packages, the npm dependencies and the build. Quick when all is there.
set -euo pipefail
cd "$(dirname "$0")/.."

# g++, make and python3 build cap and native/ (node-gyp); python3 also sends the benchmark floods.
debian_packages=(libpcap-dev nftables iptables ipset iproute2 openssl procps g++ make python3)
missing=()
for package in "${debian_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root, or: apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm ci when node_modules is missing or older than the lock file (cap's
# native build runs then: it needs libpcap-dev, installed above).
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json \
      || ! -f node_modules/cap/build/Release/cap.node ]]; then
  echo "setup: npm ci"
  npm ci --no-audit --no-fund
fi

# The native addons (native/: the P-256 path, the capture ring's drop counter): npm ci builds them;
# rebuilt here if one went missing or its source changed.
native_outdated() {
  local name
  for name in sknock_p256:sknock_p256 sknock_packet_stats:packet_stats; do
    local addon="native/build/Release/${name%%:*}.node" source="native/${name##*:}.c"
    if [[ ! -f $addon || $source -nt $addon ]]; then return 0; fi
  done
  return 1
}
if native_outdated; then
  echo "setup: building the native addons"
  npm run --silent build:native >/dev/null
fi

# The build (tsc) is fast; running it every time keeps dist/ true to the sources.
npx --no-install tsc -p tsconfig.json
