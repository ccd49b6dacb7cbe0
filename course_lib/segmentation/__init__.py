"""Unit 3 -- portrait segmentation: which pixels are the person?

Losses (:mod:`.losses`, Lovász hinge in :mod:`.lovasz`; :mod:`.inputs` checks a (prediction, mask) pair once at
each loss and metric), :mod:`.metrics`, the PSPNet (:mod:`.pspnet`, Zhao et al. CVPR 2017, on the dilated ResNet
of :mod:`.backbone`) and :mod:`.inference`, data curation (:mod:`.portraits`), training and evaluation at the
masks' resolution (:mod:`.train`), portrait effects (:mod:`.effects`), and, optional, Segment Anything prompted
with a box or a click on the same portraits (:mod:`.sam`; needs ``segment_anything`` and a SAM checkpoint).
"""
from __future__ import annotations

from .effects import blur_background, replace_background, soft_alpha
from .losses import (BCELoss, CombinedLoss, DiceLoss, FocalLoss, LovaszHingeLoss, SoftJaccardLoss, bce_loss,
                     combined_loss, dice_loss, focal_loss, lovasz_hinge_loss, soft_jaccard, soft_jaccard_loss)
from .metrics import IoUMeter, boundary_f_score, iou, pixel_accuracy
from .portraits import (PortraitAugment, PortraitFolder, eg1800, imbalanced_blobs, load_mask, shared_portraits,
                        synthetic_portraits, train_val_split)
from .inference import count_parameters, optimize_for_inference, predict_mask
from .pspnet import PSPNet, PyramidPoolingModule, pspnet, pyramid_pooling
from .train import (LOSSES, PreloadedPortraits, compare_losses, evaluate_segmentation, load_pspnet, make_loss,
                    predict_logits, pretrained, train_segmentation)

__all__ = [
    "bce_loss", "soft_jaccard", "soft_jaccard_loss", "combined_loss", "dice_loss", "focal_loss", "lovasz_hinge_loss",
    "BCELoss", "SoftJaccardLoss", "CombinedLoss", "DiceLoss", "FocalLoss", "LovaszHingeLoss",
    "iou", "IoUMeter", "boundary_f_score", "pixel_accuracy",
    "PSPNet", "pspnet", "pyramid_pooling", "PyramidPoolingModule", "optimize_for_inference", "predict_mask",
    "count_parameters",
    "load_mask", "PortraitFolder", "PortraitAugment", "synthetic_portraits", "imbalanced_blobs", "shared_portraits",
    "eg1800", "train_val_split",
    "LOSSES", "make_loss", "PreloadedPortraits", "train_segmentation", "evaluate_segmentation", "predict_logits",
    "load_pspnet", "pretrained", "compare_losses",
    "blur_background", "replace_background", "soft_alpha",
]
