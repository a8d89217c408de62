#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, skipping what is present.
# Idempotent. Under CI=true a package that cannot be installed fails the run.
set -euo pipefail

# package:binary pairs; a package is installed when its binary is missing.
NEEDED=(
  openssh-server:/usr/sbin/sshd
  sudo:/usr/bin/sudo
  nats-server:nats-server
  e2fsprogs:/usr/sbin/mkfs.ext4
  chromium:/usr/bin/chromium
  curl:/usr/bin/curl
  openssl:/usr/bin/openssl
)

missing=()
for pair in "${NEEDED[@]+"${NEEDED[@]}"}"; do
  pkg=${pair%%:*}
  bin=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "$bin" ] || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "test dependencies: all present"
  exit 0
fi

echo "test dependencies: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; }; then
  echo "error: could not install ${missing[*]} with apt-get; install them by hand and run the tests again" >&2
  exit 1
fi
