"""Run the full benchmark sweep and write benchmarks/results/bench.{json,md,png}.

    python benchmarks/run.py            # the full CPU (and, with a GPU, GPU) sweep
    python benchmarks/run.py --quick    # < 1 minute: checks the harness

Same as `fastnn bench --out benchmarks/results`; see fastnn/bench.py for the method.
"""

import sys
from pathlib import Path

from fastnn.bench import main

if __name__ == "__main__":
    out = str(Path(__file__).resolve().parent / "results")
    sys.exit(main(["--out", out, *sys.argv[1:]]))
