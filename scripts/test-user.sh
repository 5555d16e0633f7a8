#!/usr/bin/env bash
# Creates the unprivileged user that the non-root `kompi init` tests run as, unless it exists:
# kompi-test (or $KOMPI_TEST_USER), shell /bin/bash, home /home/<user>. Run as root; tests that need
# the user skip, saying why, when it is missing.
set -euo pipefail
user=${KOMPI_TEST_USER:-kompi-test}

[ "$(id -u)" = 0 ] || { echo "test-user.sh: run as root (it adds a user)" >&2; exit 2; }
if id "$user" >/dev/null 2>&1; then
  echo "test user $user exists"
  exit 0
fi
useradd --create-home --home-dir "/home/$user" --shell /bin/bash --user-group "$user"
# useradd leaves the password locked ("!"), and a root sshd without PAM refuses even key logins to a
# locked account; "*" disables password logins without locking the account.
usermod --password '*' "$user"
echo "created test user $user"
