#!/usr/bin/env bash
# Installs the Debian packages kompi needs on this machine.
#   install-deps.sh run    what the local cluster and its examples need (Open MPI, OpenSSH, iproute2, a C compiler)
#   install-deps.sh test   the above, plus what the tests need: the Kubernetes testbed's packages and binaries
#                          (cached under ~/.cache/kompi) and an unprivileged user for the non-root tests
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_PACKAGES=(openmpi-bin libopenmpi-dev openssh-server openssh-client iproute2 procps gcc libc6-dev make)

need_root() { [ "$(id -u)" = 0 ] || { echo "install-deps.sh: run as root (it installs Debian packages)" >&2; exit 2; }; }

install_packages() {
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return
  echo "installing: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

case ${1:-} in
  run)
    need_root
    install_packages "${RUN_PACKAGES[@]}"
    ;;
  test)
    need_root
    install_packages "${RUN_PACKAGES[@]}"
    scripts/test-user.sh
    testbed/testbed.sh build
    ;;
  *) sed -n '2,5s/^# \{0,1\}//p' "$0"; exit 2 ;;
esac
