"""`make bench`: each benchmark module in its own process, in the order given, then one summary of every figure
next to its target. A missed target is reported, never a failure; a wrong result (a run not SUCCESS, a wrong count)
fails its module, and the summary then names it and the exit status is 1.

    python -m tests.bench catalog_bench fleet_bench load_bench import_bench
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.bench.support import ROOT, Figure, read_figures, verdict


def summary(figures: list[Figure], failed: list[str]) -> str:
    rows = [("scenario", "figure", "value", "target", "")]
    rows += [(f.scenario, f.name, f.value, f.target, verdict(f.met)) for f in figures]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join([cell.ljust(width) for cell, width in zip(row, widths, strict=False)] + [row[4]]).rstrip()
             for row in rows]  # fmt: skip
    if failed:
        lines.append(f"WRONG RESULTS in {', '.join(failed)}: see their output above (figures of a failed module may "
                     "be missing)")  # fmt: skip
    else:
        lines.append("every run of every scenario ended as expected, with every asset")
    return "\n".join(lines)


def main(modules: list[str]) -> int:
    figures_file = Path(tempfile.mkdtemp(prefix="bench-")) / "figures.jsonl"
    failed = []
    for module in modules:
        print(f"\n===== {module} =====", flush=True)
        completed = subprocess.run([sys.executable, "-m", f"tests.bench.{module}"], cwd=ROOT,
                                   env=os.environ | {"BENCH_SUMMARY": str(figures_file)})  # fmt: skip
        if completed.returncode != 0:
            failed.append(f"{module} (exit status {completed.returncode})")
    print("\n===== summary =====")
    print(summary(read_figures(figures_file), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or ["catalog_bench", "fleet_bench", "load_bench", "import_bench"]))
