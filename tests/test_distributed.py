"""`fit` under torch.distributed (gloo on this CPU), gradient accumulation and TensorBoard logs (issue 15).

Two processes are started the way torchrun starts them: the same function in each, with MASTER_ADDR,
MASTER_PORT, RANK, LOCAL_RANK and WORLD_SIZE in the environment. Float tolerance: the gradient of a
batch of 2B samples is the average of two averages of B (DDP's all-reduce) instead of one average of
2B, so the weights agree to float32 rounding (atol 1e-6 after a few Adam steps on weights of order 0.1).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from course_lib.core import training
from course_lib.core.distributed import Context, shard
from course_lib.core.training import fit

ROOT = Path(__file__).resolve().parents[1]
ATOL = 1e-6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data(n=48):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, 6, 6, generator=g)
    y = (x[:, :1] * 0.5 - x[:, 2:3] + 0.1 * torch.randn(n, 1, 6, 6, generator=g))
    return torch.utils.data.TensorDataset(x, y)


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Tanh(), torch.nn.Conv2d(8, 1, 1))


def _mae(pred, target):
    return (pred - target).abs().flatten(1).mean(1)


class _Stop:
    def __init__(self, at):
        self.at = at

    def __call__(self, step, logs):
        if step == self.at:
            raise KeyboardInterrupt


def _train(out: Path, *, steps, batch_size, checkpoint=None, accumulate=1, stop_at=None, log_dir=None):
    result = fit(_model(), torch.nn.functional.mse_loss, _data(), _data(20), steps=steps, batch_size=batch_size,
                 lr=1e-2, metrics={"mae": _mae}, eval_every=2, checkpoint=checkpoint, checkpoint_every=2,
                 device="cpu", progress=False, accumulate=accumulate, log_dir=log_dir,
                 callback=_Stop(stop_at) if stop_at else None)
    return result


def _worker(rank, world, port, out, kwargs):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    writes = []
    real_save = training.atomic_save
    training.atomic_save = lambda obj, path: (writes.append(str(path)), real_save(obj, path))
    try:
        result = _train(out, **kwargs)
        torch.save({"state": result.model.state_dict(), "history": result.history, "writes": writes,
                    "world_size": result.world_size, "global_batch": result.global_batch,
                    "interrupted": result.interrupted}, out / f"rank{rank}.pt")
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def _two_processes(out: Path, **kwargs):
    out.mkdir(parents=True, exist_ok=True)
    mp.start_processes(_worker, args=(2, _free_port(), out, kwargs), nprocs=2, join=True, start_method="spawn")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]


def _close(a: dict, b: dict, atol=ATOL):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=atol, msg=k)


def test_shard_is_one_processes_order_cut_into_slices():
    order = list(range(100, 131))  # 31 samples
    one = shard(order, 8, Context())
    assert one == order[:24]  # the last incomplete batch is dropped, as DataLoader(drop_last=True) does
    ranks = [shard(order, 2, Context(rank=r, world_size=2), accumulate=2) for r in range(2)]
    # global batch 8: rank 0 takes samples 0-3 of it (two micro-batches of 2), rank 1 samples 4-7
    assert ranks[0] == order[0:4] + order[8:12] + order[16:20]
    assert ranks[1] == order[4:8] + order[12:16] + order[20:24]


def test_two_processes_train_like_one_with_the_global_batch(tmp_path):
    steps = 6
    single = _train(tmp_path, steps=steps, batch_size=8, checkpoint=tmp_path / "one.ckpt")
    ranks = _two_processes(tmp_path / "ddp", steps=steps, batch_size=4, checkpoint=tmp_path / "ddp.ckpt")
    _close(ranks[0]["state"], single.model.state_dict())
    _close(ranks[1]["state"], ranks[0]["state"], atol=0)  # the replicas are identical
    assert ranks[0]["world_size"] == 2 and ranks[0]["global_batch"] == 8
    # validation: each process scored half of the held-out set; the averages are over all 20 samples
    for got, want in zip(ranks[0]["history"]["val"], single.history["val"]):
        assert got["step"] == want["step"]
        assert got["mae"] == pytest.approx(want["mae"], abs=1e-6) and got["loss"] == pytest.approx(want["loss"], abs=1e-6)
    for got, want in zip(ranks[1]["history"]["train"], single.history["train"]):
        assert got["loss"] == pytest.approx(want["loss"], abs=1e-6)  # the logged loss is the global one
    # one writer: rank 0 wrote the checkpoint at steps 2, 4, 6; rank 1 wrote nothing
    assert ranks[0]["writes"] == [str(tmp_path / "ddp.ckpt")] * 3 and ranks[1]["writes"] == []
    ckpt = torch.load(tmp_path / "ddp.ckpt", weights_only=False)
    assert ckpt["world_size"] == 2 and len(ckpt["rng_ranks"]) == 2 and ckpt["run_config"]["global_batch"] == 8


def test_interrupted_two_process_run_resumes_exactly(tmp_path):
    whole = _two_processes(tmp_path / "whole", steps=6, batch_size=4, checkpoint=tmp_path / "whole.ckpt")
    first = _two_processes(tmp_path / "first", steps=6, batch_size=4, checkpoint=tmp_path / "part.ckpt", stop_at=3)
    assert first[0]["interrupted"] and torch.load(tmp_path / "part.ckpt", weights_only=False)["step"] == 3
    second = _two_processes(tmp_path / "second", steps=6, batch_size=4, checkpoint=tmp_path / "part.ckpt")
    _close(second[0]["state"], whole[0]["state"], atol=0)
    _close(second[1]["state"], whole[0]["state"], atol=0)
    # a different number of processes is another training: refused, naming what differs
    with pytest.raises(training.CheckpointError, match="global_batch"):
        _train(tmp_path, steps=6, batch_size=4, checkpoint=tmp_path / "part.ckpt")


def test_accumulation_equals_the_large_batch(tmp_path):
    large = _train(tmp_path, steps=4, batch_size=8)
    accumulated = _train(tmp_path, steps=4, batch_size=4, accumulate=2)
    _close(accumulated.model.state_dict(), large.model.state_dict())
    assert accumulated.global_batch == 8
    both = _two_processes(tmp_path / "both", steps=4, batch_size=2, accumulate=2)
    _close(both[0]["state"], large.model.state_dict())
    assert both[0]["global_batch"] == 8


def test_tensorboard_event_files_hold_the_curves(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = _train(tmp_path, steps=4, batch_size=8, log_dir=tmp_path / "tb")
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    train = [(e.step, e.value) for e in events.Scalars("train/loss")]
    assert train == [(row["step"], pytest.approx(row["loss"], rel=1e-6)) for row in result.history["train"]]
    val = [(e.step, e.value) for e in events.Scalars("val/mae")]
    assert val == [(row["step"], pytest.approx(row["mae"], rel=1e-6)) for row in result.history["val"]]
    assert {"train/lr", "val/loss"} <= set(events.Tags()["scalars"])


@pytest.mark.slow
def test_torchrun_superres_train_writes_one_checkpoint_and_sidecar(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    out, run = tmp_path / "espcn.pt", tmp_path / "run.ckpt"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "course_lib.superres", "train", "--steps",
           "10", "--batch-size", "4", "--patch-size", "30", "--scale", "3", "--out", str(out), "--checkpoint",
           str(run), "--threads", "1", "--log-dir", str(tmp_path / "tb")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["espcn.pt", "espcn.pt.json", "run.ckpt", "tb"]
    side = json.loads((tmp_path / "espcn.pt.json").read_text())
    assert side["world_size"] == 2 and side["global_batch"] == 8, side
    assert torch.load(run, weights_only=False)["step"] == 10
    assert proc.stdout.count("wrote ") == 1  # rank 1 prints nothing
