"""Command line for the style-transfer unit.

    python -m course_lib.style stylize CONTENT STYLE OUT [--size 512] [--steps 300] [--style-weight 1e6]
    python -m course_lib.style train --style STYLE --out model.pt [--images DIR | --coco 2000] [--steps 2000]
    python -m course_lib.style apply IN OUT --checkpoint model.pt

``stylize`` runs the optimisation of Gatys et al. (VGG19); ``train`` trains a feed-forward TransformerNet
(Johnson et al.) for one style and saves it with a JSON sidecar (the command, the data, the steps, the weights
of the loss network); ``apply`` runs a trained one on an image of any size. Offline (no ImageNet weights in the
torch hub cache) the VGG has random weights; every command prints which weights it used.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..core import datasets
from ..core.checkpoints import load_pretrained, save_pretrained
from ..core.cli import (add_train_arguments, command_line, positive_int, run_command, scale_meta, set_threads,
                        start_training)
from ..core.distributed import is_main_process
from ..core.images import load_image, save_image, to_tensor
from .fast import STYLE_LAYERS, TransformerNet, apply, train_fast
from .features import VGGFeatures, min_input_side
from .gatys import stylize
from .inputs import as_rgb, fit_longer_side, resize


def cmd_stylize(args) -> int:
    set_threads(args.threads)
    styles = args.style
    result = stylize(args.content, styles if len(styles) > 1 else styles[0], size=args.size, steps=args.steps,
                     optimizer=args.optimizer, init=args.init, content_weight=args.content_weight,
                     style_weight=args.style_weight, tv_weight=args.tv_weight,
                     preserve_color=args.preserve_color, seed=args.seed, progress=not args.quiet)
    out = save_image(result.image, args.output)
    ratio = result.style_loss_start / max(result.style_loss_end, 1e-30)
    print(f"wrote {out} ({result.image.shape[-1]}x{result.image.shape[-2]}) in {result.seconds:.1f} s; "
          f"VGG19 weights: {result.weights_used}; style loss {result.style_loss_start:.4g} -> "
          f"{result.style_loss_end:.4g} ({ratio:.1f}x lower)")
    for note in result.notes:
        print("note:", note)
    if result.stopped:
        print("stopped early:", result.stopped, file=sys.stderr)
        return 1
    return 0


def _content_images(args):
    """The training photos: a folder, a COCO subset (online), or the offline photos."""
    need = min_input_side(STYLE_LAYERS, "vgg16")  # the loss network's poolings; TransformerNet takes any size
    if args.size < need:
        raise ValueError(f"train: --size {args.size} is too small: the VGG16 loss network pools "
                         f"{need.bit_length() - 1} times before {STYLE_LAYERS[-1]}, so crops need >= {need} pixels")
    if args.images and args.coco:
        raise ValueError("train: give --images DIR or --coco N, not both")
    if args.images:
        folder = Path(args.images)
        if not folder.is_dir():
            raise FileNotFoundError(f"train: --images {folder} is not a folder")
        return str(folder), f"folder {folder} (random {args.size}px crops)"
    if args.coco:
        folder = datasets.fetch("coco-val2017")  # a clear DatasetUnavailableError offline
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if not files:
            raise FileNotFoundError(f"train: no images in {folder}")
        files = files[: int(args.coco)]
        return [str(p) for p in files], f"COCO val2017, first {len(files)} images ({folder})"
    photos = datasets.offline_natural_images()
    names = [n for n in datasets.offline_split()[0] if n in photos]
    return [to_tensor(photos[n]) for n in names], f"offline photos, training side ({', '.join(names)})"


def cmd_train(args) -> int:
    run_ckpt = start_training(args, f"fast_style_{Path(args.out).stem}-{{run}}.pt")
    content, content_desc = _content_images(args)
    style = as_rgb(args.style, "style")
    if max(style.shape[-2:]) > args.style_size:
        style = resize(style, fit_longer_side(*style.shape[-2:], args.style_size))
    features = VGGFeatures(layers=list(STYLE_LAYERS), arch="vgg16", weights="auto")
    print(f"loss network: VGG16, {features.weights_used} weights")
    out = Path(args.out)
    t0 = time.perf_counter()
    result = train_fast(content, style, size=args.size, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                        content_weight=args.content_weight, style_weight=args.style_weight, tv_weight=args.tv_weight,
                        width=args.width, seed=args.seed, checkpoint=run_ckpt, checkpoint_every=args.checkpoint_every,
                        features=features, accumulate=args.accumulate, log_dir=args.log_dir)
    if result.interrupted:
        print(f"interrupted at step {result.step}; run the same command again to resume from {result.checkpoint}")
        return 130
    if not is_main_process():  # under torchrun rank 0 writes
        return 0
    model = result.model
    meta = {"command": command_line("course_lib.style", args.argv), "data": content_desc, "style": str(args.style),
            "steps": result.step, "size": args.size, "batch_size": args.batch_size, **scale_meta(result),
            "loss_weights": {"content": args.content_weight, "style": args.style_weight, "tv": args.tv_weight},
            "skipped_unreadable": len(result.extra.get("skipped", {})), "loss_network_weights": features.weights_used,
            "final_train_loss": result.history["train"][-1]["loss"] if result.history.get("train") else None,
            "seconds": round(time.perf_counter() - t0, 1)}
    save_pretrained(out, model, arch=TransformerNet.arch, config=model.config_dict(), meta=meta)
    print(f"wrote {out} (+ {out.name}.json) after {result.step} steps")
    if meta["skipped_unreadable"]:
        print(f"skipped {meta['skipped_unreadable']} unreadable content image(s): "
              + "; ".join(list(result.extra["skipped"].values())[:3]))
    return 0


def cmd_apply(args) -> int:
    set_threads(args.threads)
    model, _ = load_pretrained(args.checkpoint, TransformerNet, arch=TransformerNet.arch)
    image = load_image(args.input)
    t0 = time.perf_counter()
    out = apply(model, image)
    seconds = time.perf_counter() - t0
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    out.save(args.output)
    print(f"wrote {args.output} ({out.width}x{out.height}) in {seconds:.2f} s")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.style", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("stylize", help="Gatys et al.: optimise an image (VGG19 features)")
    s.add_argument("content")
    s.add_argument("style", nargs="+", help="one style image, or several (blended equally)")
    s.add_argument("output")
    s.add_argument("--size", type=int, default=512, help="longer side of the output")
    s.add_argument("--steps", type=int, default=300)
    s.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs")
    s.add_argument("--init", choices=["content", "noise"], default="content")
    s.add_argument("--content-weight", type=float, default=1.0)
    s.add_argument("--style-weight", type=float, default=1e6)
    s.add_argument("--tv-weight", type=float, default=0.0)
    s.add_argument("--preserve-color", choices=["luminance", "histogram"], default=None)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=0)
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_stylize)
    t = sub.add_parser("train", help="Johnson et al.: train a feed-forward network for one style")
    t.add_argument("--style", required=True, help="the style image")
    t.add_argument("--images", default=None, help="folder of content photos (default: the offline photos)")
    t.add_argument("--coco", type=positive_int, default=None,
                   help="train on the first N COCO val2017 images (downloads)")
    t.add_argument("--size", type=int, default=256, help="side of the random content crops")
    t.add_argument("--style-size", type=int, default=512, help="longer side the style image is resized to")
    t.add_argument("--content-weight", type=float, default=1.0)
    t.add_argument("--style-weight", type=float, default=1e5)
    t.add_argument("--tv-weight", type=float, default=1e-2)
    t.add_argument("--width", type=float, default=1.0, help="channel multiplier of the TransformerNet")
    t.add_argument("--checkpoint-every", type=int, default=200)
    add_train_arguments(t, steps=2000, batch_size=4, lr=1e-3)
    t.set_defaults(func=cmd_train)
    a = sub.add_parser("apply", help="stylise an image with a trained network")
    a.add_argument("input")
    a.add_argument("output")
    a.add_argument("--checkpoint", required=True)
    a.add_argument("--threads", type=int, default=0)
    a.set_defaults(func=cmd_apply)
    args = p.parse_args(argv)
    args.argv = argv
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
