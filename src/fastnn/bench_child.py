"""PyTorch (CPU) timed beside fastnn by `fastnn bench`, in a child process kept for one case.

In one process PyTorch's OpenMP threads and OpenBLAS's fight for the cores (benchmarks/README.md#method),
so PyTorch runs in a child. The child builds the case from the same seed and answers one
request at a time: "step" (one untimed step; its loss) or "time K" (one untimed step, then
K steps timed in the child). The harness asks between its own implementations' repetitions, so every PyTorch
repetition is paired with the fastnn repetitions beside it, a second or so apart, and a host
that slows down during the run slows both sides of "fused / best torch" alike.

    python -m fastnn.bench_child NETWORK ROWS [autocast]   # the child's side: requests on stdin
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

# Idle seconds before and after a repetition in the child, untimed: the harness's OpenBLAS threads
# spin (yielding) for up to ~75 ms after their last product and slowed PyTorch's next steps 3.5x
# (benchmarks/README.md#method); PyTorch's threads, after its steps, slowed fastnn's by nothing seen.
SETTLE_BEFORE, SETTLE_AFTER = 0.1, 0.005


class RemoteStep:
    """One PyTorch step of a (network, rows) case, run in a child process: call it for an
    untimed step (returns the loss), `timed(k)` for the child's own time of k steps; with
    `autocast`, each step runs under `torch.autocast("cpu", dtype=torch.bfloat16)`."""

    def __init__(self, network: str, rows: int, env: dict[str, str], autocast: bool = False) -> None:
        command = [sys.executable, "-m", "fastnn.bench_child", network, str(rows)] + (["autocast"] if autocast else [])
        self.process = subprocess.Popen(command,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env={**os.environ, **env})
        self.torch_threads = self._ask(None)["torch_threads"]

    def __call__(self) -> float:
        return self._ask("step")["loss"]

    def timed(self, calls: int) -> float:
        """Seconds per step over `calls` steps back to back, timed in the child after one
        untimed step (a training loop does not idle between steps as the harness does)."""
        return self._ask(f"time {calls}")["seconds"]

    def close(self) -> int:
        """End the child (it stops at the end of its input); its exit status."""
        self.process.stdin.close()
        status = self.process.wait(timeout=60)
        self.process.stdout.close()
        return status

    def _ask(self, request: str | None) -> dict[str, Any]:
        try:
            if request is not None:
                self.process.stdin.write(request + "\n")
                self.process.stdin.flush()
            line = self.process.stdout.readline()
        except BrokenPipeError:
            line = ""
        if not line:
            raise RuntimeError(f"the PyTorch child process ended (exit status {self.close()}): see its error above")
        return json.loads(line)


def serve(network: str, rows: int, autocast: bool = False) -> None:
    """The child's side: build the case, say how many threads PyTorch uses, then answer."""
    import torch

    from fastnn import bench

    net = bench.NETWORKS[network]
    float32_step = bench.torch_step("cpu")(net, *bench.make_data(net, rows))

    def step():
        if not autocast:
            return float32_step()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return float32_step()
    print(json.dumps({"torch_threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        verb, *args = line.split()
        if verb == "step":
            answer = {"loss": float(step())}
        else:  # "time K"
            calls = int(args[0])
            step()  # untimed: wakes PyTorch's threads, asleep since the harness's settling pause
            start = time.perf_counter()
            for _ in range(calls):
                step()
            answer = {"seconds": (time.perf_counter() - start) / calls}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]), autocast=sys.argv[3:] == ["autocast"])
