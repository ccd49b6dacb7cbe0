"""Command line for the portrait-segmentation unit.

    python -m course_lib.segmentation train --preset resnet18 --size 224 160 --steps 6000 --out course_lib/checkpoints/pspnet_portrait.pt
    python -m course_lib.segmentation evaluate --images DIR --masks DIR [--checkpoint PATH] [--json]
    python -m course_lib.segmentation predict IN OUT [--checkpoint PATH] [--effect blur|replace --background IMG]

``train`` reads real portraits (``--images/--masks``, default: the prepared EG1800 folder when this
machine has it, see ``portraits.shared_portraits``), keeps a fixed, name-hashed 15 % aside for
validation, trains, measures mean per-image IoU on that held-out part at the masks' resolution and
saves the weights with a JSON sidecar (command, data, steps, validation IoU). Without real
portraits it trains on synthetic ones and says so.
``evaluate`` prints mean per-image IoU and dataset IoU over a folder of real portraits (masks named
like the images, .png, 255 = person). ``predict`` writes a mask (or a portrait effect).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from ..core.checkpoints import as_stored, save_pretrained
from ..core.cli import (add_train_arguments, command_line, positive_int, run_command, scale_meta, set_threads,
                        start_training)
from ..core.datasets import DatasetUnavailableError, cache_dir
from ..core.distributed import is_main_process
from ..core.images import load_image, save_image, to_tensor
from ..core.training import data_fingerprint
from .effects import blur_background, replace_background
from .inference import predict_mask
from .portraits import PortraitAugment, PortraitFolder, shared_portraits, synthetic_portraits, train_val_split
from .pspnet import PSPNet, pspnet
from .train import (LOSSES, TTA, PreloadedPortraits, StreamedPortraits, evaluate_segmentation, load_pspnet, pretrained,
                    train_segmentation)


def _model(args):
    """(model, input size (H, W) or None): ``--checkpoint`` (default: the shipped one), ``--size`` or the sidecar's."""
    model, sidecar = load_pspnet(args.checkpoint) if args.checkpoint else pretrained()
    return model, tuple(args.size) if args.size else tuple(sidecar.get("input_size_hw") or ()) or None


def _folder(images, masks):
    if images is None:
        if masks is not None:
            raise ValueError("--masks needs --images")
        return shared_portraits(), "prepared EG1800 portraits (shared_portraits())"
    return PortraitFolder(images, masks), f"images {images}, masks {masks or images}"


def cmd_train(args) -> int:
    run_ckpt = start_training(args, f"segmentation_{Path(args.out).stem}-{{run}}.pt")
    if args.init and not Path(args.init).is_file():
        raise FileNotFoundError(f"--init: no checkpoint at {args.init}")
    size, synthetic = tuple(args.size), False
    try:
        folder, desc = _folder(args.images, args.masks)
        train_set, val_set = train_val_split(folder, val_fraction=args.val_fraction, seed=0)
        # only pairs that decode: the folder would serve a readable pair in place of a bad one
        train_set, val_set = train_set.readable(limit=args.limit), val_set.readable()
        skipped = {**train_set.skipped, **val_set.skipped}
    except DatasetUnavailableError as exc:
        if args.images is not None:
            raise
        print(f"note: no real portraits here ({str(exc).split(';')[0]}); training on synthetic portraits "
              "instead -- the checkpoint will not be good on real photos")
        data = synthetic_portraits(args.synthetic, size=size, seed=0)
        n_val = max(1, len(data) // 7)
        stop = len(data) if args.limit is None else min(len(data), n_val + args.limit)
        train_set = torch.utils.data.Subset(data, range(n_val, stop))
        val_set = torch.utils.data.Subset(data, range(n_val))
        desc, synthetic, skipped = f"{len(data)} synthetic portraits (synthetic_portraits, seed 0)", True, {}
    print(f"data: {desc}: {len(train_set)} for training, {len(val_set)} held out for validation"
          + (f"; {len(skipped)} unreadable pair(s) skipped (e.g. {', '.join(sorted(skipped)[:3])})"
             if skipped else ""))
    augment = PortraitAugment(size, scale=(0.8, 1.25), rotate=args.rotate, jitter=(0.3, 0.3, 0.3),
                              blur_p=0.2) if not args.no_augment else None
    tag = "x".join(map(str, size))
    cache = {part: None if synthetic else cache_dir() / "portraits" / f"{part}_{tag}.pt" for part in ("train", "val")}
    preload_bytes = len(train_set) * 4 * size[0] * size[1]
    if args.stream or preload_bytes > 2e9:  # a large folder is read per sample, never held in memory
        print(f"reading the {len(train_set)} training portraits from disk for every sample"
              + ("" if args.stream else f" (preloading them would take {preload_bytes / 1e9:.1f} GB)"))
        train_data = StreamedPortraits(train_set, size, augment=augment)
    else:
        train_data = PreloadedPortraits(train_set, size, augment=augment, cache=cache["train"])
    val_small = PreloadedPortraits(val_set, size, limit=args.val_limit, cache=cache["val"])
    torch.manual_seed(args.seed)
    init_desc = None
    if args.init:
        model, init_meta = load_pspnet(args.init)
        model.train()
        init_desc = (f"{args.init} (trained {init_meta.get('steps', '?')} steps, "
                     f"held-out mIoU {init_meta.get('val_miou', '?')})")
        print(f"fine-tuning from {init_desc}; --preset and --output-stride come from that checkpoint")
    else:
        model = pspnet(args.preset, output_stride=args.output_stride) if args.output_stride else pspnet(args.preset)
    out = Path(args.out)
    # what defines the run besides train_segmentation's settings: the portraits as decoded, their augmentation,
    # the starting weights
    if isinstance(train_data, StreamedPortraits):  # the files' names and sizes: decoding all is what it avoids
        pairs = getattr(train_set, "pairs", None)
        data_id = {"files": data_fingerprint([[img, mask] for _, img, mask in pairs]) if pairs else desc,
                   "size": list(size), "n": len(train_data)}
    else:
        data_id = data_fingerprint([train_data.images, train_data.masks])
    run = {"data": data_id, "augment": None if augment is None else {"rotate": args.rotate},
           "init": data_fingerprint(args.init) if args.init else None}
    t0 = time.perf_counter()
    result = train_segmentation(model, train_data, val_small, steps=args.steps, loss=args.loss,
                                jaccard_weight=args.jaccard_weight, batch_size=args.batch_size, lr=args.lr,
                                warmup=args.warmup, checkpoint=run_ckpt, eval_every=args.eval_every, seed=args.seed,
                                checkpoint_every=args.checkpoint_every, num_workers=args.workers, run_config=run,
                                accumulate=args.accumulate, log_dir=args.log_dir)
    if result.interrupted:
        print(f"interrupted at step {result.step}; run the same command again to resume from {result.checkpoint}")
        return 130
    if not is_main_process():  # under torchrun rank 0 evaluates and writes
        return 0
    trained_on = str(next(result.model.parameters()).device)
    model = result.model.cpu().eval()
    n_params = sum(p.numel() for p in model.parameters())
    int8 = args.storage == "int8" or (args.storage == "auto" and 2 * n_params > 20e6)
    as_stored(model, int8=int8)  # measure what is shipped: the weights as they come back from the file
    print("measuring IoU on the held-out portraits at the masks' resolution ...")
    metrics = evaluate_segmentation(model, val_set, size=size)
    print(f"held-out: mean per-image IoU {metrics['miou']:.4f}, dataset IoU {metrics['dataset_iou']:.4f} "
          f"over {metrics['n']} portraits")
    tta = evaluate_segmentation(model, val_set, size=size, progress=False, **TTA)
    print(f"held-out with test-time augmentation (evaluate --tta): mean per-image IoU {tta['miou']:.4f}, "
          f"dataset IoU {tta['dataset_iou']:.4f}")
    meta = {"command": command_line("course_lib.segmentation", args.argv), "data": desc, "synthetic_data": synthetic,
            "train_images": len(train_set), "val_images": len(val_set), "skipped_unreadable": len(skipped),
            "validation_split": f"train_val_split(val_fraction={args.val_fraction}, seed=0): by a hash of each name",
            "steps": result.step, "input_size_hw": list(size), "batch_size": args.batch_size, **scale_meta(result),
            "loss": args.loss, "jaccard_weight": args.jaccard_weight,
            "weights_used": getattr(model, "weights_used", None), "init": init_desc,
            "val_miou": round(metrics["miou"], 5), "val_dataset_iou": round(metrics["dataset_iou"], 5),
            "tta": f"scales {list(TTA['scales'])}, flip {TTA['flip']} (evaluate --tta)",
            "val_miou_tta": round(tta["miou"], 5), "val_dataset_iou_tta": round(tta["dataset_iou"], 5),
            "train_seconds": round(time.perf_counter() - t0, 1), "device": trained_on,
            "torch_threads": torch.get_num_threads()}
    save_pretrained(out, model, arch=PSPNet.arch, config=model.config_dict(), meta=meta, int8=int8)
    print(f"wrote {out} (+ {out.name}.json)")
    return 0


def cmd_evaluate(args) -> int:
    set_threads(args.threads)
    model, size = _model(args)
    folder, desc = _folder(args.images, args.masks)
    # score only pairs that decode: the folder would serve a readable pair in place of a bad one
    folder = folder.readable(limit=args.limit, progress=not args.json)
    tta = TTA if args.tta else {"scales": (1.0,), "flip": False}
    t0 = time.perf_counter()
    metrics = evaluate_segmentation(model, folder, size=size, limit=args.limit, progress=not args.json, **tta)
    result = {"images": desc, "checkpoint": args.checkpoint or "shipped (pretrained())",
              "input_size_hw": list(size) if size else None,
              "tta": f"scales {list(tta['scales'])}, flip {tta['flip']}" if args.tta else "none", "n": metrics["n"],
              "mean_per_image_iou": metrics["miou"], "dataset_iou": metrics["dataset_iou"],
              "pixel_accuracy": metrics["pixel_accuracy"], "n_skipped": len(folder.skipped),
              "seconds": round(time.perf_counter() - t0, 2)}
    if folder.skipped:
        result["skipped"] = dict(folder.skipped)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{desc}: {metrics['n']} portraits" + (f" ({len(folder.skipped)} unreadable pair(s) skipped)"
                                                      if folder.skipped else ""))
        print(f"mean per-image IoU {metrics['miou']:.4f} | dataset IoU {metrics['dataset_iou']:.4f} | "
              f"pixel accuracy {metrics['pixel_accuracy']:.4f}")
        print(folder.report())
    return 0


def cmd_predict(args) -> int:
    set_threads(args.threads)
    model, size = _model(args)
    image = load_image(args.input, mode="RGB")
    prob = predict_mask(model, image, size=size, threshold=None)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.effect == "mask":
        Image.fromarray(((prob >= 0.5).numpy() * 255).astype("uint8")).save(out)
    elif args.effect == "blur":
        save_image(blur_background(to_tensor(image), prob, sigma=args.sigma), out)
    else:
        if args.background is None:
            raise ValueError("predict: --effect replace needs --background IMAGE")
        save_image(replace_background(to_tensor(image), prob, load_image(args.background, mode="RGB")), out)
    print(f"wrote {out} ({args.effect}); person covers {100 * float((prob >= 0.5).float().mean()):.1f}% of the image")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m course_lib.segmentation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    threads = argparse.ArgumentParser(add_help=False)
    threads.add_argument("--threads", type=int, default=0)
    folders = argparse.ArgumentParser(add_help=False)
    folders.add_argument("--images", default=None, help="folder of portraits (default: the prepared EG1800 folder)")
    folders.add_argument("--masks", default=None, help="folder of masks named like the images (default: --images)")
    checkpoint = argparse.ArgumentParser(add_help=False)
    checkpoint.add_argument("--checkpoint", default=None, help="default: the shipped checkpoint")
    checkpoint.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"),
                            help="network input size (default: the checkpoint's training size)")

    t = sub.add_parser("train", parents=[folders], help="train a PSPNet on portraits and save it with a sidecar")
    t.add_argument("--preset", default="resnet18", help="pspnet preset: light, resnet18, resnet50")
    t.add_argument("--output-stride", type=int, choices=[8, 16], default=None)
    t.add_argument("--size", type=int, nargs=2, default=[224, 160], metavar=("H", "W"))
    t.add_argument("--init", default=None,
                   help="start from the weights of a saved checkpoint (fine-tuning: new optimiser and schedule)")
    t.add_argument("--warmup", type=int, default=100)
    t.add_argument("--loss", choices=LOSSES, default="combined")
    t.add_argument("--jaccard-weight", type=float, default=0.5)
    t.add_argument("--rotate", type=float, default=10.0, help="augmentation: rotation range in degrees")
    t.add_argument("--no-augment", action="store_true")
    t.add_argument("--val-fraction", type=float, default=0.15)
    t.add_argument("--val-limit", type=positive_int, default=64, help="portraits in the periodic validation")
    t.add_argument("--limit", type=positive_int, default=None, help="train on at most this many portraits")
    t.add_argument("--synthetic", type=int, default=512, help="synthetic portraits when no real ones exist")
    t.add_argument("--eval-every", type=int, default=500)
    t.add_argument("--checkpoint-every", type=int, default=250)
    t.add_argument("--storage", choices=["auto", "float16", "int8"], default="auto",
                   help="weights on disk; auto: int8 when float16 would exceed 20 MB (the IoU is measured after)")
    t.add_argument("--stream", action="store_true",
                   help="read the portraits from disk for every sample instead of holding them in memory "
                        "(automatic when they would take more than 2 GB)")
    add_train_arguments(t, steps=4000, batch_size=8, lr=1e-3,
                        workers_help="DataLoader worker processes for the augmentation (on a GPU machine: 4 or more)")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", parents=[folders, checkpoint, threads],
                       help="mean per-image IoU and dataset IoU over a folder of real portraits")
    e.add_argument("--limit", type=positive_int, default=None)
    e.add_argument("--tta", action="store_true",
                   help="test-time augmentation: average the logits at 1x and 1.25x the input size, each mirrored "
                        "too (about 5x slower)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_evaluate)
    r = sub.add_parser("predict", parents=[checkpoint, threads], help="segment one portrait: write its mask, or an effect")
    r.add_argument("input")
    r.add_argument("output")
    r.add_argument("--effect", choices=["mask", "blur", "replace"], default="mask")
    r.add_argument("--background", default=None, help="image for --effect replace")
    r.add_argument("--sigma", type=float, default=8.0, help="background blur for --effect blur")
    r.set_defaults(func=cmd_predict)
    args = p.parse_args(argv)
    args.argv = argv
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
