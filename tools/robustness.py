"""Do the notebooks' claims hold for other seeds and thread counts, or only for one trained model?

For each configuration (course seed, torch threads) this trains the cached models at CI size
(`tinyml_utils.prepare`) and executes every notebook to the end (errors do not stop a notebook, as
under nbval --nbval-lax), keeping each executed notebook with its outputs in the log folder, so
the measured values behind a failure can be read. Then it prints one table: notebook x
configuration, with each failing cell and the last line of its error. Exits 1 on any failure.

    python tools/robustness.py                       # seeds 0-3 with 1 thread, seed 0 with 2 threads
    python tools/robustness.py --configs 1:1 2:1     # seed:threads pairs
    python tools/robustness.py --notebooks book/03_quantization_basics.ipynb

The models of every configuration share one cache (their file names carry seed and threads).
Slow: about 16 minutes per configuration on 2 cores (half of it training). `./run robustness` calls this.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIGS = ["0:1", "1:1", "2:1", "3:1", "0:2"]


def last_line(text: str) -> str:
    """The most telling line of an error: the last 'SomethingError: ...' line, else the last line."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text or "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[A-Za-z_.]*(Error|Exception|Failed)\b", line)]
    return (errors or lines or ["(no message)"])[-1][:160]


def execute(notebook: str, env: dict, out_dir: str) -> list[tuple[str, str, str]]:
    """Run one notebook to the end (as nbval --nbval-lax does, errors do not stop it), save it with
    its outputs in out_dir, and return (notebook, cell, message) for every cell that raised."""
    import nbformat
    from nbclient import NotebookClient

    os.environ.update(env)  # the kernel inherits this process's environment
    path = ROOT / notebook
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=1200, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    except Exception as exc:  # a dead kernel or a timeout: report it as this notebook's failure
        nbformat.write(nb, Path(out_dir) / path.name)
        return [(notebook, "-", f"{type(exc).__name__}: {last_line(str(exc))}")]
    nbformat.write(nb, Path(out_dir) / path.name)
    found, code_index = [], 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        code_index += 1
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                found.append((notebook, f"code cell {code_index}",
                              f"{output.get('ename')}: {last_line(output.get('evalue', ''))}"))
    return found


def run_config(seed: int, threads: int, notebooks: list[str], log_dir: Path) -> tuple[list, float]:
    """Prepare the models, then execute every notebook for one configuration; returns (failures, seconds)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    env = {"TINYML_CI": "1", "TINYML_SEED": str(seed), "TINYML_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    tag = f"seed{seed}-threads{threads}"
    out_dir = log_dir / tag
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{tag}.log", "w") as log:
        subprocess.run([sys.executable, "-m", "tinyml_utils.prepare"], cwd=ROOT, env={**os.environ, **env},
                       check=True, stdout=log, stderr=subprocess.STDOUT)
    workers = max(1, (os.cpu_count() or 1) // threads)
    found = []
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        for result in pool.map(execute, notebooks, [env] * len(notebooks), [str(out_dir)] * len(notebooks)):
            found += result
    return found, time.perf_counter() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="seed:threads pairs")
    parser.add_argument("--notebooks", nargs="+", default=["book", "labs"])
    parser.add_argument("--logs", default=str(ROOT / "_build" / "robustness"))
    args = parser.parse_args()
    log_dir = Path(args.logs)
    log_dir.mkdir(parents=True, exist_ok=True)
    notebooks = sorted(str(p.relative_to(ROOT)) for arg in args.notebooks
                       for p in ([ROOT / arg] if arg.endswith(".ipynb") else sorted((ROOT / arg).glob("*.ipynb"))))
    results = {}
    for config in args.configs:
        seed, threads = (int(v) for v in config.split(":"))
        found, seconds = run_config(seed, threads, notebooks, log_dir)
        results[config] = found
        print(f"[robustness] seed {seed}, {threads} thread(s): {len(found)} failing cell(s), {seconds / 60:.1f} min",
              flush=True)
    # The table: one row per notebook, one column per configuration.
    width = max(len(n) for n in notebooks)
    header = " | ".join(f"s{c.split(':')[0]}/t{c.split(':')[1]}" for c in args.configs)
    print(f"\n| {'notebook'.ljust(width)} | {header} |")
    print(f"| {'-' * width} |" + "|".join(" --- " for _ in args.configs) + "|")
    for nb in notebooks:
        cells = [sum(1 for f in results[c] if f[0] == nb) for c in args.configs]
        print(f"| {nb.ljust(width)} | " + " | ".join(f"{n:^5}" for n in cells) + " |")
    total = sum(len(found) for found in results.values())
    for config, found in results.items():
        for notebook, cell, message in found:
            print(f"  seed:threads {config}  {notebook}  {cell}: {message}")
    print(f"\n[robustness] {total} failing cell(s) over {len(args.configs)} configuration(s)")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
