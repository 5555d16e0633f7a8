#!/usr/bin/env bash
# Builds kompi statically linked against glibc (crt-static: Debian's libc6-dev ships libc.a), so that it
# depends on no library of the image it runs in: kompi's runtime image carries this binary, and injects it
# into users' MPI images (Debian bullseye's glibc 2.31 and older included). Prints the binary's path on
# stdout; --path prints it without building.
set -euo pipefail
cd "$(dirname "$0")/.."
host=$(rustc -vV | sed -n 's/^host: //p')
path=${CARGO_TARGET_DIR:-$PWD/target}/$host/release/kompi
if [ "${1:-}" != --path ]; then
  # --target keeps the flag off build scripts and proc-macros, which must stay dynamic.
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --quiet -p kompi --target "$host" >&2
fi
echo "$path"
