"""`make bench`: measure the bridge on the local cloud and write the results.

Writes bench/results/latest.json (every figure with median, p99, samples,
baseline and ratio, and the machine) and bench/results/latest.md (the same
as a table for the README). `--quick` runs a few samples of each, as a smoke
test.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from bench import figures, memory, payloads, reload
from bench.stats import Figure, machine

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    scale = 0.1 if options.quick else 1.0
    started = time.monotonic()
    results = measure(scale)
    elapsed = time.monotonic() - started
    write(results, elapsed, options.quick)
    for figure in results:
        print(row(figure))
    print(f"measured in {elapsed:.0f} s; written to {RESULTS}")


def measure(scale: float) -> list[Figure]:
    results = [
        figures.warm_dispatch(max(20, int(1000 * scale))),
        figures.cold_start(max(3, int(20 * scale))),
        reload.reload_time(max(3, int(20 * scale))),
        *memory.memory(),
    ]
    rig = figures.BridgeRig()
    try:
        results.append(figures.round_trip(rig, max(20, int(200 * scale))))
        for concurrency in (1, 8, 32):
            results.append(figures.throughput(rig, concurrency, 15 * scale))
    finally:
        rig.close()
    # A rig of its own: the 64 environments the throughput runs leave warm,
    # and the endpoint's state after them, are no part of moving 5 MB.
    rig = figures.BridgeRig()
    try:
        results.append(payloads.large_payloads(rig, max(2, int(10 * scale))))
    finally:
        rig.close()
    return results


def row(figure: Figure) -> str:
    ratio = figure.ratio_median
    verdict = {True: "met", False: "MISSED", None: ""}[figure.met]
    return (
        f"| {figure.name} | {figure.measured.median:.2f} | {figure.measured.p99:.2f} "
        f"| {figure.measured.samples} | "
        f"{'' if figure.baseline is None else f'{figure.baseline.median:.2f}'} | "
        f"{'' if ratio is None else f'{ratio:.2f}'} | {figure.target} | {verdict} |"
    )


def write(results: list[Figure], elapsed: float, quick: bool) -> None:
    RESULTS.mkdir(exist_ok=True)
    name = "quick" if quick else "latest"
    described = machine()
    data = {
        "machine": described,
        "seconds": round(elapsed, 1),
        "figures": [figure.as_dict() for figure in results],
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    header = (
        "| figure | median | p99 | samples | baseline median | ratio | target | |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    command = "python -m bench --quick" if quick else "make bench"
    measured_on = (
        f"Measured on {described['cpus']} CPUs ({described['processor']}), "
        f"Python {described['python']}, {described['platform']}, "
        f"in {elapsed:.0f} s, by `{command}`.\n\n"
    )
    notes = [f"- {f.name}: {note}" for f in results for note in f.notes]
    rows = "\n".join(row(f) for f in results)
    text = measured_on + header + rows + "\n\n" + "\n".join(notes)
    (RESULTS / f"{name}.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
