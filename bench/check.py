"""`make bench-check`: compare bench/results.json with the targets and print the verdict.

Informational by default (exit 0), so CI can print it; `--strict` exits 1 when a target is not met
or was not measured.
"""

from __future__ import annotations

import argparse
import json
import sys

from bench.run import RESULTS, TARGETS, targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--strict", action="store_true")
    args = parser.parse_args()
    if not RESULTS.exists():
        print(f"no {RESULTS}: run `make bench` first", file=sys.stderr)
        sys.exit(1 if args.strict else 0)
    results = json.loads(RESULTS.read_text())
    checked = targets(results)
    failing = 0
    print(f"{'figure':40} {'measured':>12} {'target':>12}  verdict")
    for key, (op, value) in TARGETS.items():
        if key not in checked:
            print(f"{key:40} {'-':>12} {op + ' ' + str(value):>12}  not measured")
            failing += 1
            continue
        met = checked[key]["met"]
        failing += not met
        print(f"{key:40} {results[key]:>12} {op + ' ' + str(value):>12}  {'met' if met else 'NOT met'}")
    quick = results.get("machine", {}).get("quick")
    print(f"\n{len(TARGETS) - failing} of {len(TARGETS)} targets met" + (" (quick run: not for quoting)" if quick else ""))
    sys.exit(1 if args.strict and failing else 0)


if __name__ == "__main__":
    main()
