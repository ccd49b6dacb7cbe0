"""Optimised CPU inference for :class:`~.models.ESPCN`: the same function, about 2.5x faster.

``fast = optimize_for_inference(model)`` and ``fast(y)``, or ``upscale(model, image, optimized=True)``.
:class:`FastESPCN` is built from the readable model's weights and checked against it (outputs equal
to 1e-4). What it does, and why (timings: ``benchmarks/results/superres.md``):

1. *Strips* of LR rows, each with its receptive field (4 rows) of context, run through all three layers
   one after the other, so that the feature maps stay in the caches (memory, not arithmetic, is the bottleneck).
2. *oneDNN with the activation fused*, channels-last (``torch.ops.mkldnn._convolution_pointwise``, the kernel
   ``torch.compile`` calls). Zero padding becomes context plus "fill what lies outside the image" after each layer.
3. *tanh as a sigmoid*: ``tanh(z) = 2 sigmoid(2z) - 1`` (oneDNN's fused sigmoid is ~10x cheaper than its
   tanh). The factor 2 goes into the layer's weights, the map ``2s - 1`` into the next layer's (``W' = 2W``,
   ``b' = b - sum W``), and "zero outside the image" becomes ``s = 1/2``. It differs from eager by ~3e-6.
4. *First layer as a 1x1 convolution of im2col patches*: oneDNN's direct kernel for one input channel is slow.
5. *Last layer padded from 9 to 16 output channels* (AVX2 holds 8 floats).

Tried and not kept: Winograd F(4x4, 3x3) for the 64->32 layer does 4x fewer multiplications, yet ran 2-5x
slower: oneDNN's direct convolution already runs near the cores' peak, and Winograd's transforms written as
torch operations are extra passes over memory that cost more than the products they save.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..core.checks import InputError, check_int
from .models import ESPCN

__all__ = ["FastESPCN", "optimize_for_inference"]

# The fused oneDNN post-op of each hidden activation (tanh is computed as a sigmoid, see 3. above).
_ONEDNN = {"relu": "relu", "leaky_relu": "leaky_relu", "tanh": "sigmoid", "prelu": "none"}


class _Stage:
    """One convolution of :class:`FastESPCN`, its weights already rewritten for the oneDNN kernel."""

    def __init__(self, weight, bias, attr, scalars, fill, prelu=None, im2col=False):
        self.k, self.im2col = weight.shape[-1], im2col
        self.radius = self.k // 2
        if im2col:  # a k x k convolution of c channels = a 1x1 convolution of the c k k patch values
            weight = weight.reshape(weight.shape[0], -1, 1, 1)
        self.weight = weight.contiguous(memory_format=torch.channels_last)
        self.bias, self.attr, self.scalars, self.fill, self.prelu = bias.contiguous(), attr, scalars, fill, prelu

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.im2col:
            n, c, h, w = x.shape
            k = self.k
            # (N, C, H', W', k, k) -> (N, C k k, H', W'): each LR pixel's patch, channels-last
            x = x.unfold(2, k, 1).unfold(3, k, 1).permute(0, 2, 3, 1, 4, 5)
            x = x.reshape(n, h - k + 1, w - k + 1, c * k * k).permute(0, 3, 1, 2)
        y = torch.ops.mkldnn._convolution_pointwise(x, self.weight, self.bias, [0, 0], [1, 1], [1, 1], 1,
                                                    self.attr, self.scalars, "")
        return y if self.prelu is None else F.prelu(y, self.prelu)


class FastESPCN(nn.Module):
    """An :class:`ESPCN` rewritten for CPU inference (a snapshot of its weights, eval mode, no gradients).

    Takes ``(N, C, H, W)`` or ``(C, H, W)`` float32 CPU tensors; build it with :func:`optimize_for_inference`.
    """

    #: Bytes of the widest feature map of one strip: 20 MB stays in a server's L3 cache.
    strip_bytes = 20 << 20

    def __init__(self, model: ESPCN, *, strip_rows: int | None = None):
        super().__init__()
        cfg = self.config = model.config
        self.strip_rows = None if strip_rows is None else check_int(strip_rows, "FastESPCN: strip_rows", minimum=1)
        self.scale, self.in_channels, self.out_channels = model.scale, model.in_channels, model.out_channels
        # The eager model as a submodule: receptive_radius() reads its convolutions, and it is the reference.
        self.eager = copy.deepcopy(model).eval()
        convs = [model.features[0], model.features[2], model.to_subpixels]
        acts = [model.features[1], model.features[3]]
        self.stages: list[_Stage] = []
        # A hidden activation h is computed as s with h = a s + c: for tanh, s = sigmoid(2z), a = 2, c = -1.
        a, c = 1.0, 0.0
        with torch.no_grad():
            for i, conv in enumerate(convs):
                w = conv.weight.detach().float() * a  # fold the previous layer's h = a s + c into this one
                b = conv.bias.detach().float() + c * conv.weight.detach().float().sum((1, 2, 3))
                prelu, scalars = None, []
                if i == 2:
                    attr, fill = ("sigmoid" if cfg.output_activation == "sigmoid" else "none"), 0.0
                elif cfg.activation == "tanh":
                    attr, w, b, (a, c, fill) = "sigmoid", 2 * w, 2 * b, (2.0, -1.0, 0.5)  # h = 0 <=> s = 1/2
                else:
                    attr, (a, c, fill) = _ONEDNN[cfg.activation], (1.0, 0.0, 0.0)
                    scalars = [cfg.negative_slope] if cfg.activation == "leaky_relu" else []
                    prelu = acts[i].weight.detach().float().clone() if cfg.activation == "prelu" else None
                if i == 2 and w.shape[0] % 8:
                    # oneDNN's AVX2 kernels work on blocks of 8 output channels: 9 or 27 run faster as 16 or
                    # 32 with zero weights, sliced off after the convolution.
                    extra = 8 - w.shape[0] % 8
                    w, b = torch.cat([w, w.new_zeros(extra, *w.shape[1:])]), torch.cat([b, b.new_zeros(extra)])
                im2col = i == 0 and conv.in_channels * conv.kernel_size[0] ** 2 <= 128  # Y 5x5: 25, RGB 5x5: 75
                self.stages.append(_Stage(w, b, attr, scalars, fill, prelu, im2col))
        self.radius = sum(s.radius for s in self.stages)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        single = x.dim() == 3
        x = (x.unsqueeze(0) if single else x).float()
        n, _, h, w = x.shape
        r, big_r = self.scale, self.radius
        out = x.new_empty(n, self.out_channels, h * r, w * r)
        xp = F.pad(x, (big_r, big_r, big_r, big_r))  # zeros outside the image, as the "same" padding
        widest = max(s.weight.shape[0] for s in self.stages[:-1])  # LR rows per strip: strip_bytes of it
        rows = self.strip_rows or max(8, self.strip_bytes // (4 * widest * (w + 2 * big_r)))
        for top in range(0, h, rows):
            bottom = min(top + rows, h)
            y = xp[:, :, top: bottom + 2 * big_r]
            margin = big_r  # rows/columns of context still around the strip
            for stage in self.stages:
                y = stage(y)
                margin -= stage.radius
                if margin:  # outside the image the next layer must see its "same" padding: overwrite it
                    y[:, :, :, :margin] = stage.fill
                    y[:, :, :, y.shape[-1] - margin:] = stage.fill
                    if top < margin:
                        y[:, :, : margin - top] = stage.fill
                    if bottom + margin > h:
                        y[:, :, h - (top - margin):] = stage.fill
            y = y[:, : self.out_channels * r * r]  # drop the zero channels added for speed
            if self.config.output_activation == "clamp":
                y = y.clamp(0.0, 1.0)
            out[:, :, top * r: bottom * r] = F.pixel_shuffle(y, r)
        return out[0] if single else out


def optimize_for_inference(model: nn.Module, *, strip_rows: int | None = None, verbose: bool = True) -> nn.Module:
    """For an :class:`ESPCN` on a CPU with oneDNN, a :class:`FastESPCN` checked against it on a test input; for
    anything else, or if a step fails, a printed note and the eager ``model`` itself, so calling it is always safe.
    ``strip_rows`` fixes the strip height. oneDNN builds its kernels on the first call of a shape: time the calls after.
    """
    if not isinstance(model, nn.Module):
        raise InputError(f"optimize_for_inference: model must be an nn.Module, got {type(model).__name__}")

    def fallback(why: str) -> nn.Module:
        if verbose:
            print(f"optimize_for_inference: {why}; using the eager model")
        return model.eval()

    if not isinstance(model, ESPCN):
        return fallback(f"no optimised path for {type(model).__name__} (only ESPCN)")
    if not torch.backends.mkldnn.is_available():
        return fallback("this PyTorch build has no oneDNN (mkldnn)")
    if next(model.parameters()).device.type != "cpu":
        return fallback(f"the model is on {next(model.parameters()).device}, the fast path is for the CPU")
    try:
        fast = FastESPCN(model, strip_rows=strip_rows)
        probe = torch.rand(2, model.in_channels, 13, 11, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            err = (fast(probe) - fast.eager(probe)).abs().max().item()
        if not err < 1e-4:
            return fallback(f"the optimised model differs from the eager one by {err:.2g} on a test input")
    except Exception as exc:  # an op missing from this build, an odd config, ...
        return fallback(f"the optimised path failed ({type(exc).__name__}: {exc})")
    return fast
