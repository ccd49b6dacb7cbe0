"""Unit 2 -- style transfer: paint a photo in the style of an artwork.

* :mod:`.features` ``VGGFeatures``: frozen VGG19/VGG16 with layers addressed by name
                   (``conv4_2``, ``relu1_1``, ``pool3`` ...), ImageNet normalisation inside,
                   truncated after the last layer asked for; ImageNet weights when cached or
                   downloadable, else seeded random weights with per-layer activation
                   normalisation (and it says which, every time)
* :mod:`.losses`   ``gram_matrix``, ``content_loss``, ``style_loss``, ``total_variation``,
                   colour preservation (``match_color_statistics``, ``luminance_only``)
* :mod:`.gatys`    ``stylize``: optimisation-based transfer (Gatys et al. 2016), LBFGS or Adam,
                   coarse-to-fine scales, several styles blended, colour preservation
* :mod:`.fast`     ``TransformerNet``: feed-forward transfer (Johnson et al. 2016)
"""
from __future__ import annotations

from .features import ARCHS, MEAN, STD, VGGFeatures, layer_names
from .gatys import (CONTENT_LAYERS, STYLE_LAYERS, StylizeResult, as_rgb, reconstruct, reference_stylize_step_time,
                    stylize)
from .fast import PerceptualLoss, StyleContentData, TransformerNet, TransformerNetConfig, apply, frames_per_second, train_fast
from .losses import (GramMatrix, content_loss, gram_matrix, luminance_only, match_color_statistics, style_loss,
                     style_targets, total_variation)

__all__ = ["VGGFeatures", "layer_names", "ARCHS", "MEAN", "STD", "gram_matrix", "GramMatrix", "content_loss",
           "style_loss", "style_targets", "total_variation", "match_color_statistics", "luminance_only",
           "stylize", "reconstruct", "StylizeResult", "as_rgb", "reference_stylize_step_time", "CONTENT_LAYERS", "STYLE_LAYERS",
           "TransformerNet", "TransformerNetConfig", "StyleContentData", "PerceptualLoss", "train_fast", "apply",
           "frames_per_second"]
