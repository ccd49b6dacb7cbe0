"""Unit 2 -- style transfer: paint a photo in the style of an artwork.

Teaching files (what a lecturer opens):

* :mod:`.losses`      ``gram_matrix``, ``content_loss``, ``style_loss``, ``total_variation`` (function + thin
                      Module each), colour preservation (``match_color_statistics``, ``luminance_only``)
* :mod:`.gatys`       ``stylize``: optimisation-based transfer (Gatys et al. 2016), L-BFGS or Adam,
                      coarse-to-fine scales, several styles blended, colour preservation; ``reconstruct``
* :mod:`.transformer` ``TransformerNet``: the feed-forward network of Johnson et al. 2016, layer by layer
* :mod:`.fast`        its training: ``StyleContentData``, ``PerceptualLoss``, ``train_fast``; ``apply``,
                      ``frames_per_second``

Beside them: :mod:`.features` ``VGGFeatures`` (frozen VGG19/VGG16 with layers addressed by name, ImageNet
weights when cached or downloadable, else seeded random weights with per-layer normalisation -- and it says
which, every time) and :mod:`.inputs` (any image in as an RGB tensor).
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
