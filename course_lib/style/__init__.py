"""Unit 2 -- style transfer: paint a photo in the style of an artwork.

Teaching files: :mod:`.losses`, :mod:`.gatys` (optimisation-based transfer) and :mod:`.transformer` (Johnson et
al.'s network); beside them :mod:`.fast` (its training), :mod:`.features` (VGG) and :mod:`.inputs`.
"""
from __future__ import annotations

from .features import ARCHS, MEAN, STD, VGGFeatures, layer_names
from .gatys import CONTENT_LAYERS, STYLE_LAYERS, StylizeResult, reconstruct, stylize
from .inputs import as_rgb
from .fast import PerceptualLoss, StyleContentData, apply, frames_per_second, train_fast
from .losses import (ContentLoss, GramMatrix, StyleLoss, TotalVariation, content_loss, gram_matrix, luminance_only,
                     match_color_statistics, style_loss, style_targets, total_variation)
from .transformer import TransformerNet, TransformerNetConfig

__all__ = ["VGGFeatures", "layer_names", "ARCHS", "MEAN", "STD", "gram_matrix", "GramMatrix", "content_loss",
           "ContentLoss", "style_loss", "StyleLoss", "style_targets", "total_variation", "TotalVariation",
           "match_color_statistics", "luminance_only", "stylize", "reconstruct", "StylizeResult", "as_rgb",
           "CONTENT_LAYERS", "STYLE_LAYERS", "TransformerNet", "TransformerNetConfig", "StyleContentData",
           "PerceptualLoss", "train_fast", "apply", "frames_per_second"]
