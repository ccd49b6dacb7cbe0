"""One training, one or several processes: ESPCN x3 training under torchrun (issue 15).

The same global batch (16 patches of 51x51) three ways: one process; two processes of 8 (DDP, gloo on
the CPU, one thread each so that both runs use the machine's cores); one process accumulating 2 x 8.
Samples/s are the global throughput that ``fit`` reports (``patches_per_second`` in the sidecar).
On a GPU machine the same script compares 1 and N GPUs (NCCL).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def _train(tmp: Path, name: str, nproc: int, batch: int, accumulate: int, steps: int, threads: int) -> dict:
    torchrun = Path(sys.executable).with_name("torchrun")
    out = tmp / f"{name}.pt"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", str(nproc), "-m", "course_lib.superres", "train",
           "--scale", "3", "--steps", str(steps), "--batch-size", str(batch), "--accumulate", str(accumulate),
           "--patch-size", "51", "--threads", str(threads), "--out", str(out), "--checkpoint",
           str(tmp / f"{name}.ckpt")]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    side = json.loads(out.with_name(out.name + ".json").read_text())
    per_s = side["patches_per_second"]
    return {"setup": name, "processes": nproc, "batch per process": batch, "accumulate": accumulate,
            "global batch": side["global_batch"], "steps": steps, "samples/s": per_s,
            "s/step": side["global_batch"] / per_s, "PSNR-Y gain (dB)": side["heldout_metrics"]["espcn"]["psnr_y"]
            - side["heldout_metrics"]["bicubic"]["psnr_y"]}


def run(quick: bool = False) -> dict:
    import torch

    cores = os.cpu_count() or 1
    gpus = torch.cuda.device_count()
    steps = 20 if quick else 300
    n = max(2, gpus) if gpus else 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = [_train(tmp, "1 process", 1, 16, 1, steps, cores),
                _train(tmp, f"{n} processes (DDP)", n, 16 // n, 1, steps, max(1, cores // n)),
                _train(tmp, "1 process, accumulate 2", 1, 8, 2, steps, cores)]
    columns = list(rows[0])
    return {"tables": [{"title": f"ESPCN x3 training, global batch 16, {steps} steps "
                                 f"({'GPU' if gpus else 'CPU, ' + str(cores) + ' cores'})",
                        "columns": columns, "rows": rows}],
            "notes": ["On a CPU two processes share the same cores: DDP adds gradient all-reduces and a second "
                      "Python process, so it is not faster here; it pays off with one GPU per process.",
                      "The held-out gain after so few steps only says that the three runs train alike."]}
