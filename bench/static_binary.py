#!/usr/bin/env python3
"""What the static kompi costs against the dynamic one: file size, and the start time of
`kompi --version` (fork, exec, dynamic loading or not, argument parsing, exit).

The static binary is scripts/static-kompi.sh's (glibc with crt-static; KOMPI_STATIC= another one), the
dynamic one `cargo build --release -p kompi`'s (KOMPI= another one). Both should be built from the same
sources. The runs alternate between the two; medians and the ratio static/dynamic of --reps runs each.
"""

import argparse
import os
import subprocess
import sys

from benchlib import REPO, header, kompi_bin, loadavg, log, main_guard, median, ms, ratio, table, timed


def static_bin() -> str:
    path = os.environ.get("KOMPI_STATIC") or subprocess.run(
        [str(REPO / "scripts/static-kompi.sh"), "--path"], capture_output=True, text=True, check=True).stdout.strip()
    if not os.access(path, os.X_OK):
        sys.exit(f"{path} is missing: run scripts/static-kompi.sh (or set KOMPI_STATIC=/path/to/kompi)")
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=200, help="runs of each binary (default %(default)s)")
    args = ap.parse_args()
    header("static_binary: size and start time of the static kompi against the dynamic one")
    binaries = {"dynamic": kompi_bin(), "static": static_bin()}
    times = {name: [] for name in binaries}
    for rep in range(args.reps):
        for name in (binaries if rep % 2 == 0 else reversed(list(binaries))):
            seconds, _ = timed([binaries[name], "--version"])
            times[name].append(seconds)
    log(f"{args.reps} runs each, alternating")
    size = {name: os.path.getsize(path) for name, path in binaries.items()}
    rows = [[name, path, f"{size[name] / 1e6:.2f} MB", ms(median(times[name]))] for name, path in binaries.items()]
    rows.append(["static / dynamic", "", ratio(size["static"], size["dynamic"]), ratio(median(times["static"]), median(times["dynamic"]))])
    print(f"## kompi --version, median of {args.reps} runs each (alternating)")
    print()
    print(table(["binary", "path", "size", "start to exit"], rows))
    print()
    print(f"load average at end {loadavg()}")
    return 0


if __name__ == "__main__":
    main_guard(main)
