"""What every unit's command line shares: argument types and the error handling.

Each unit has ``python -m course_lib.<unit> ...`` (argparse sub-commands). Errors a user can fix --
a missing file, a bad argument, an unreadable checkpoint, being offline -- end as one line, never a
traceback. Every ``train`` command also runs under ``torchrun --nproc_per_node N``: the processes
1..N-1 train and print nothing; rank 0 prints, evaluates and writes the weights and their sidecar.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys

from .checks import check_int

__all__ = ["run_command", "command_line", "set_threads", "positive_int", "add_scale_arguments", "scale_meta",
           "add_train_arguments", "start_training"]


def positive_int(text) -> int:
    """argparse ``type=`` for counts such as ``--limit N``: an int >= 1, or a usage error naming the flag.
    ``--limit 0`` is an error (status 2), not "no limit" (leave the option out) and not "no images"."""
    try:
        n = int(text)
    except (TypeError, ValueError):
        n = 0  # not a number: the same usage error as 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}")
    return n


def command_line(prog: str, argv=None) -> str:
    """The command as typed (for sidecars): ``python -m <prog> <args>``."""
    args = sys.argv[1:] if argv is None else list(argv)
    return f"python -m {prog} " + " ".join(shlex.quote(a) for a in args)


def add_scale_arguments(parser) -> None:
    """``--accumulate`` and ``--log-dir``: the options every ``train`` command passes on to ``fit``."""
    parser.add_argument("--accumulate", type=positive_int, default=1,
                        help="sum the gradients of N batches per step (global batch = batch size x N x processes)")
    parser.add_argument("--log-dir", default=None, help="write TensorBoard curves here (tensorboard --logdir DIR)")


def add_train_arguments(parser, *, steps: int, batch_size: int, lr, count=int, workers_help=None, out_required=True,
                        out_help="where to save the weights (+ .json sidecar)") -> None:
    """The options every ``train`` command has, with the unit's defaults (``--steps`` and ``--batch-size`` of type
    ``count``; ``--workers`` only with a ``workers_help``), and :func:`add_scale_arguments`'s."""
    parser.add_argument("--steps", type=count, default=steps)
    parser.add_argument("--batch-size", type=count, default=batch_size)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--checkpoint", default=None, help="run checkpoint for resume (default: cache/runs/...)")
    parser.add_argument("--out", required=out_required, default=None, help=out_help)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    if workers_help:
        parser.add_argument("--workers", type=int, default=0, help=workers_help)
    add_scale_arguments(parser)


def start_training(args, run_name: str):
    """``--threads``, ``--workers`` checked, and the run checkpoint: ``--checkpoint``, else ``cache/runs/<run_name>``,
    where ``{run}`` becomes a hash of the run's settings (another training, another file)."""
    from .training import run_checkpoint_path

    set_threads(args.threads)
    if getattr(args, "workers", 0) < 0:
        raise ValueError(f"--workers must be >= 0, got {args.workers}")
    return run_checkpoint_path(args.checkpoint, args.out, run_name)


def scale_meta(result) -> dict:
    """What a sidecar records of how many processes trained and the batch of one optimiser step."""
    return {"world_size": result.world_size, "global_batch": result.global_batch}


def run_command(args, errors=(ValueError, FileNotFoundError, TypeError, OSError)) -> int:
    """Call ``args.func(args)``; a user-fixable error becomes ``error: ...`` on stderr and status 2.

    Under ``torchrun`` only rank 0 prints to stdout, and every process leaves the process group at the end.
    """
    from .distributed import finish, is_main_process

    quiet = contextlib.redirect_stdout(open(os.devnull, "w")) if not is_main_process() else contextlib.nullcontext()
    try:
        with quiet:
            return args.func(args)
    except errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        finish()


def set_threads(n: int) -> None:
    """``--threads N``: torch op threads (0 keeps torch's default)."""
    check_int(n, "--threads", minimum=0)
    if n:
        import torch

        torch.set_num_threads(n)
