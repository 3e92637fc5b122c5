"""Wall time per stage and peak memory of one whole `dvc repro` (issue 7, item 5).

Runs `dvc repro` (`--force` reruns cached stages) and follows its output: a stage starts at
DVC's "Running stage 'name':" line and ends at the next one (or at the end). Every 0.2 s the resident
memory of the whole process tree under `dvc repro` is summed from /proc (Linux), so the peak is what
the machine held at once, not one process's ru_maxrss. Writes one JSON object and prints a table:

    python benchmarks/repro_profile.py --out benchmarks/results/repro_profile.json [--force]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import typer

app = typer.Typer(add_completion=False)
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss_bytes(root: int) -> int:
    """Sum of RSS over `root` and all its descendants, read from /proc/<pid>/stat and statm."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except OSError:
            continue
    return total


class Sampler(threading.Thread):
    """Tracks the peak tree RSS, overall and since the last `mark()` (one stage)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stage_peak, self.done = pid, 0, 0, False

    def run(self) -> None:
        while not self.done:
            rss = tree_rss_bytes(self.pid)
            self.peak, self.stage_peak = max(self.peak, rss), max(self.stage_peak, rss)
            time.sleep(0.2)

    def mark(self) -> int:
        peak, self.stage_peak = self.stage_peak, 0
        return peak


@app.command()
def main(
    out: str = typer.Option(..., help="JSON file for the per-stage times and peaks"),
    force: bool = typer.Option(False, help="dvc repro --force: rerun cached stages too"),
) -> None:
    cmd = ["dvc", "repro", *(["--force"] if force else [])]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = Sampler(proc.pid)
    sampler.start()
    stages: list[dict[str, object]] = []
    current: tuple[str, float] | None = None

    def close(now: float) -> None:
        if current is not None:
            peak = sampler.mark()
            stages.append(
                {
                    "stage": current[0],
                    "seconds": round(now - current[1], 1),
                    "peak_rss_gb": round(peak / 1e9, 2),
                }
            )

    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        if line.startswith("Running stage '"):
            now = time.perf_counter()
            close(now)
            current = (line.split("'")[1], now)
            sampler.mark()
    rc = proc.wait()
    end = time.perf_counter()
    close(end)
    sampler.done = True
    result = {
        "command": " ".join(cmd),
        "returncode": rc,
        "wall_seconds": round(end - start, 1),
        "peak_rss_gb": round(sampler.peak / 1e9, 2),
        "stages": stages,
    }
    tmp = Path(out).with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(Path(out))
    print(f"\n{'stage':<40} {'seconds':>9} {'peak RSS GB':>12}")
    for s in stages:
        print(f"{s['stage']:<40} {s['seconds']:>9} {s['peak_rss_gb']:>12}")
    print(f"{'total':<40} {result['wall_seconds']:>9} {result['peak_rss_gb']:>12}")
    raise typer.Exit(rc)


if __name__ == "__main__":
    app()
