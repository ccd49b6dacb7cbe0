"""Command line for the super-resolution unit.

    python -m course_lib.superres train --scale 3 --steps 20000 --out course_lib/checkpoints/espcn_x3.pt
    python -m course_lib.superres train --deblock --steps 6000 --out course_lib/checkpoints/deblock_y.pt
    python -m course_lib.superres evaluate --images DIR --scale 3 [--checkpoint PATH] [--degradation jpeg30] [--json]
    python -m course_lib.superres upscale IN OUT --scale 3
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from ..core import datasets
from ..core.checkpoints import load_pretrained, save_pretrained
from ..core.checks import check_choice
from ..core.cli import add_train_arguments, command_line, positive_int, run_command, scale_meta, start_training
from ..core.distributed import is_main_process
from ..core.images import load_image, save_image, to_tensor
from . import pretrained, pretrained_deblock
from .data import load_folder, offline_images
from .degrade import preset_names
from .evaluate import evaluate_images, sr_methods
from .inference import upscale
from .models import DeblockThenSR, ESPCN
from .train import train_deblock, train_espcn


def _images(folder):
    if folder is None:
        photos = offline_images("holdout")
        return photos, "offline hold-out photos (" + ", ".join(photos) + ")"
    return load_folder(folder), str(folder)


def _train_images(folders, gray: bool, add_offline: bool = False, limit=None):
    if folders and not add_offline and limit is None and len(folders) == 1:
        return str(folders[0]), f"folder {folders[0]} (read lazily)"
    imgs, parts = {}, []
    for folder in folders or ():
        loaded = load_folder(folder, limit=limit)
        imgs.update({f"{folder}/{k}": v for k, v in loaded.items()})
        parts.append(f"{len(loaded)} images of {folder}")
    if not folders or add_offline:
        photos = offline_images("train")
        imgs.update(photos)
        parts.append("offline RGB photos (" + ", ".join(photos) + ")")
        if gray:
            extra = {k: to_tensor(v.convert("RGB")) for k, v in datasets.offline_gray_images().items()}
            imgs.update(extra)
            parts.append("skimage grayscale photos (" + ", ".join(extra) + ")")
    return imgs, " + ".join(parts)


def cmd_train(args) -> int:
    run_ckpt = start_training(args, "deblock-{run}.ckpt" if args.deblock
                              else f"espcn_x{args.scale}_{args.arch}-{{run}}.ckpt")
    command = command_line("course_lib.superres", args.argv)
    train_imgs, train_desc = _train_images(args.images, gray=not args.rgb_only, add_offline=args.add_offline,
                                           limit=args.limit)
    holdout, hold_desc = _images(args.eval_images)
    t0 = time.time()
    if args.deblock:
        res = train_deblock(train_imgs, quality=tuple(args.quality), scale=args.scale, val_images=holdout,
                            steps=args.steps, batch_size=args.batch_size, lr=args.lr or 5e-4,
                            checkpoint=run_ckpt, seed=args.seed, light=args.light, num_workers=args.workers,
                            accumulate=args.accumulate, log_dir=args.log_dir)
    else:
        res = train_espcn(train_imgs, args.scale, val_images=holdout, arch=args.arch, activation=args.activation,
                          steps=args.steps, batch_size=args.batch_size, patch_size=args.patch_size, lr=args.lr or 1e-3,
                          loss=args.loss, degradation=args.degradation, checkpoint=run_ckpt, seed=args.seed,
                          icnr=args.icnr, num_workers=args.workers, accumulate=args.accumulate, log_dir=args.log_dir)
    if res.interrupted:
        print(f"interrupted; rerun the same command to resume from {res.checkpoint}")
        return 130
    if not is_main_process():  # under torchrun rank 0 evaluates and writes
        return 0
    trained_on = str(next(res.model.parameters()).device)
    model = res.model.cpu().eval()
    eval_degradation = "jpeg30" if args.deblock else args.degradation
    if args.deblock:  # scored as deblock + the shipped ESPCN
        sr = pretrained(args.scale if args.scale > 1 else 3)
        scale, methods = sr.scale, sr_methods(sr, DeblockThenSR(model, sr).eval())
    else:
        scale, methods = args.scale, sr_methods(model)
    metrics = evaluate_images(holdout, scale, methods, degradation=eval_degradation)["mean"]
    table = {m: {k: round(v, 4) for k, v in d.items()} for m, d in metrics.items()}
    print(json.dumps(table, indent=2))
    if args.out:
        meta = {"command": command, "train_data": train_desc, "eval_data": hold_desc,
                "eval_degradation": eval_degradation, "steps": res.step, "batch_size": args.batch_size,
                **scale_meta(res), "train_seconds": round(time.time() - t0, 1), "device": trained_on,
                "patches_per_second": round(res.samples_per_s, 1) if res.samples_per_s == res.samples_per_s else None,
                "final_val": res.history["val"][-1] if res.history["val"] else None, "heldout_metrics": table}
        save_pretrained(args.out, model, arch="deblock" if args.deblock else "espcn", config=model.config_dict(),
                        meta=meta)
        print(f"wrote {args.out} (+ .json sidecar)")
    return 0


def cmd_evaluate(args) -> int:
    check_choice(args.degradation, preset_names(), "--degradation")
    images, desc = _images(args.images)
    if args.checkpoint:
        model, _ = load_pretrained(args.checkpoint, ESPCN, arch="espcn")
        if model.scale != args.scale:
            print(f"error: {args.checkpoint} is an x{model.scale} model, but --scale {args.scale}", file=sys.stderr)
            return 2
    else:
        model = pretrained(args.scale)
    pipe = DeblockThenSR(pretrained_deblock(), model).eval() if "jpeg" in args.degradation else None
    result = evaluate_images(images, args.scale, sr_methods(model, pipe), degradation=args.degradation)
    if args.json:
        print(json.dumps({"scale": args.scale, "degradation": args.degradation, "images": desc,
                          "n_images": len(images), "mean": result["mean"]}, indent=2))
    else:
        print(f"{len(images)} images from {desc}; x{args.scale}; degradation {args.degradation}")
        print(f"{'method':16s} {'PSNR-Y (dB)':>12s} {'SSIM-Y':>8s}")
        for m, d in result["mean"].items():
            print(f"{m:16s} {d['psnr_y']:12.2f} {d['ssim_y']:8.4f}")
    return 0


def cmd_upscale(args) -> int:
    img = load_image(args.input)
    model = pretrained(args.scale)
    try:  # large photos go block by block (inference.BLOCK): the memory is the two images
        out = upscale(model, img, optimized=True)  # the fast CPU path; same result to 1e-4
    except MemoryError:
        w, h = img.size[0] * model.scale, img.size[1] * model.scale
        raise OSError(f"upscale: not enough memory for the {w}x{h} result of {args.input} "
                      f"({4 * w * h / 1e9:.1f} GB as 8-bit RGB); use a smaller image or --scale") from None
    save_image(out, args.output)
    print(f"{args.input} {img.size[0]}x{img.size[1]} -> {args.output} {out.size[0]}x{out.size[1]} "
          f"(ESPCN x{args.scale})")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.superres", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train ESPCN (or the deblocking net) and save a shipped checkpoint")
    t.add_argument("--scale", type=int, default=3)
    t.add_argument("--arch", choices=["paper", "lecture"], default="paper")
    t.add_argument("--activation", choices=["relu", "leaky_relu", "prelu", "tanh"], default=None)
    t.add_argument("--patch-size", type=int, default=None, help="HR patch side (default 17 x scale)")
    t.add_argument("--loss", choices=["mse", "l1"], default="mse")
    t.add_argument("--degradation", default="bicubic")
    t.add_argument("--images", nargs="+", default=None,
                   help="folder(s) of HR training images (default: the offline photos)")
    t.add_argument("--add-offline", action="store_true", help="train on the offline photos too")
    t.add_argument("--limit", type=positive_int, default=None,
                   help="at most this many images per folder (loaded in memory)")
    t.add_argument("--eval-images", default=None, help="folder of held-out HR images (default: offline hold-out)")
    t.add_argument("--rgb-only", action="store_true", help="do not add the grayscale offline photos")
    t.add_argument("--icnr", action="store_true")
    t.add_argument("--deblock", action="store_true", help="train the JPEG deblocking network instead")
    t.add_argument("--quality", type=int, nargs=2, default=[20, 40], help="JPEG quality range for --deblock")
    t.add_argument("--light", action="store_true", help="smaller deblocking net")
    add_train_arguments(t, steps=2000, batch_size=32, lr=None, out_required=False,
                        out_help="where to save the trained weights (+ .json sidecar)",
                        workers_help="DataLoader worker processes that cut the patches (on a GPU machine: 2 or more)")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="PSNR-Y / SSIM-Y of bicubic and ESPCN over a folder of HR images")
    e.add_argument("--images", default=None, help="folder of HR images (default: the offline hold-out photos)")
    e.add_argument("--scale", type=int, default=3)
    e.add_argument("--checkpoint", default=None)
    e.add_argument("--degradation", default="bicubic")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)
    u = sub.add_parser("upscale", help="upscale one image with the shipped ESPCN")
    u.add_argument("input")
    u.add_argument("output")
    u.add_argument("--scale", type=int, default=3)
    u.set_defaults(func=cmd_upscale)
    args = p.parse_args(argv)
    args.argv = argv
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
