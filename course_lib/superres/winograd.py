"""Winograd convolution F(m x m, 3 x 3), written as batched matrix products in torch.

This is what cuDNN, oneDNN (on AVX-512) and NNPACK do for 3x3 convolutions,
spelled out so that it can be read top to bottom (Lavin & Gray, "Fast
Algorithms for Convolutional Neural Networks", CVPR 2016, arXiv 1509.09308).

The idea in one dimension. ``m`` outputs of a 3-tap correlation,
``y_i = sum_k d_{i+k} g_k``, cost ``3 m`` multiplications done directly.
Winograd's minimal filtering algorithm F(m, 3) needs only ``m + 2``:

    y = A^T [ (G g) * (B^T d) ]          (* = elementwise)

``B^T d`` transforms the ``m + 2`` inputs, ``G g`` the filter (once, ahead
of time), and ``A^T`` maps the ``m + 2`` products back to ``m`` outputs. The
matrices come from evaluating polynomials at the points ``0, +-1, +-2, inf``
(Cook-Toom / Chinese remainder theorem); they hold only small constants.

In two dimensions the transforms nest: an ``m x m`` output tile comes from an
``a x a`` input tile (``a = m + 2``) as ``Y = A^T [ U * V ] A`` with
``U = G g G^T`` and ``V = B^T d B``. For a layer with ``C`` input and ``K``
output channels the elementwise product becomes a sum over channels, so for
each of the ``a * a`` positions ``(xi, nu)`` of the transformed tile

    M[xi, nu] = U[xi, nu] (K x C)  @  V[xi, nu] (C x tiles)

-- ``a * a`` independent matrix products, one ``torch.bmm``. Per output
pixel that is ``a**2 / m**2`` multiply-adds per channel pair instead of 9:

=========  =====  ============  ==========================================
 F(m, 3)    tile   mults/pixel   fp32 error (this layer, inputs in [-1, 1])
=========  =====  ============  ==========================================
 direct     --     9             ~1e-6
 F(2, 3)    4x4    4  (2.25x)    ~1e-6
 F(4, 3)    6x6    2.25 (4x)     ~1e-5: the constants up to 8 in A and 1/24
                                  in G amplify rounding; larger tiles
                                  (F(6, 3)) need care to stay accurate
=========  =====  ============  ==========================================

The transforms cost memory traffic: every input is read ``(a / m)**2``
times through the overlapping tiles, and the transformed data are ``(a /
m)**2`` times larger than the image. The products win when the layer is
wide (here 64 -> 32 channels, 80 % of ESPCN's work); for a layer with one
input channel (ESPCN's first) there is nothing to share and a direct
convolution is better. :func:`course_lib.superres.inference.optimize_for_inference`
measures both and keeps what is faster.

Example::

    >>> conv = torch.nn.Conv2d(64, 32, 3, padding=1)
    >>> x = torch.rand(1, 64, 30, 40)
    >>> fast = WinogradConv2d.from_conv(conv, m=4)
    >>> bool((fast(x) - conv(x)).abs().max() < 1e-4)
    True
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["winograd_matrices", "winograd_weight", "winograd_conv3x3", "WinogradConv2d"]

# Lavin & Gray 2016, section 4.1 (F(2x2, 3x3)) and 4.2 (F(4x4, 3x3)); points 0, +-1, (+-2,) inf.
_MATRICES = {
    2: (
        [[1, 0, -1, 0],
         [0, 1, 1, 0],
         [0, -1, 1, 0],
         [0, 1, 0, -1]],
        [[1, 0, 0],
         [1 / 2, 1 / 2, 1 / 2],
         [1 / 2, -1 / 2, 1 / 2],
         [0, 0, 1]],
        [[1, 1, 1, 0],
         [0, 1, -1, -1]],
    ),
    4: (
        [[4, 0, -5, 0, 1, 0],
         [0, -4, -4, 1, 1, 0],
         [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0],
         [0, 2, -1, -2, 1, 0],
         [0, 4, 0, -5, 0, 1]],
        [[1 / 4, 0, 0],
         [-1 / 6, -1 / 6, -1 / 6],
         [-1 / 6, 1 / 6, -1 / 6],
         [1 / 24, 1 / 12, 1 / 6],
         [1 / 24, -1 / 12, 1 / 6],
         [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0],
         [0, 1, -1, 2, -2, 0],
         [0, 1, 1, 4, 4, 0],
         [0, 1, -1, 8, -8, 1]],
    ),
}


def winograd_matrices(m: int = 4):
    """``(B^T, G, A^T)`` of F(m, 3) in float64: shapes ``(a, a)``, ``(a, 3)``, ``(m, a)``, ``a = m + 2``."""
    if m not in _MATRICES:
        raise ValueError(f"winograd_matrices: m must be one of {sorted(_MATRICES)}, got {m!r}")
    return tuple(torch.tensor(t, dtype=torch.float64) for t in _MATRICES[m])


def winograd_weight(weight: torch.Tensor, m: int = 4) -> torch.Tensor:
    """Transform a 3x3 kernel ``(K, C, 3, 3)`` once: ``U = G g G^T`` as ``(a*a, K, C)`` float32.

    Done in float64 so that the only rounding is the final cast.
    """
    if not isinstance(weight, torch.Tensor) or weight.dim() != 4 or tuple(weight.shape[2:]) != (3, 3):
        shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else type(weight).__name__
        raise ValueError(f"winograd_weight: weight must be a 3x3 kernel (K, C, 3, 3), got {shape}")
    _, g, _ = winograd_matrices(m)
    g = g.to(weight.device)
    u = torch.einsum("xi,kcij,yj->xykc", g, weight.detach().double(), g)  # (a, a, K, C)
    return u.reshape((m + 2) ** 2, *weight.shape[:2]).float().contiguous()


class _Transforms:
    """The input and output transforms as dense matrices acting on flattened tiles.

    ``vec(B^T d B) = (B^T kron B^T) vec(d)``: one GEMM transforms every tile of
    every channel at once. Cached per (m, device).
    """

    _cache: dict = {}

    @classmethod
    def get(cls, m: int, device):
        key = (m, str(device))
        if key not in cls._cache:
            bt, _, at = winograd_matrices(m)
            cls._cache[key] = (torch.kron(bt, bt).float().to(device), torch.kron(at, at).float().to(device))
        return cls._cache[key]


def winograd_conv3x3(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None = None, m: int = 4,
                     padding: int = 1) -> torch.Tensor:
    """3x3 convolution, stride 1, by Winograd F(m x m, 3 x 3).

    ``x``: ``(N, C, H, W)``; ``u``: the transformed kernel from :func:`winograd_weight`
    ``(a*a, K, C)``; ``bias``: ``(K,)`` or None; ``padding``: 1 ("same", the default) or
    0 ("valid"). Returns ``(N, K, H + 2 padding - 2, W + 2 padding - 2)``, equal to
    ``F.conv2d(x, weight, bias, padding=padding)`` up to rounding (see the module docstring).
    """
    if x.dim() != 4:
        raise ValueError(f"winograd_conv3x3: x must have shape (N, C, H, W), got {tuple(x.shape)}")
    a = m + 2
    if u.dim() != 3 or u.shape[0] != a * a:
        raise ValueError(f"winograd_conv3x3: u must be winograd_weight(weight, m={m}) of shape "
                         f"({a * a}, K, C), got {tuple(u.shape)}")
    n, c, h, w = x.shape
    k = u.shape[1]
    if u.shape[2] != c:
        raise ValueError(f"winograd_conv3x3: the kernel takes {u.shape[2]} channels, x has {c} "
                         f"(shape {tuple(x.shape)})")
    if padding not in (0, 1):
        raise ValueError(f"winograd_conv3x3: padding must be 0 or 1, got {padding!r}")
    h, w = h + 2 * padding - 2, w + 2 * padding - 2  # output size
    if h < 1 or w < 1:
        raise ValueError(f"winograd_conv3x3: x of shape {tuple(x.shape)} is too small for a 'valid' 3x3 convolution")
    kron_b, kron_a = _Transforms.get(m, x.device)
    th, tw = -(-h // m), -(-w // m)  # tiles per column / row (the last ones padded)
    t = n * th * tw
    # Pad for "same" output, and at the bottom/right up to whole tiles.
    xp = F.pad(x, (padding, tw * m - w + padding, padding, th * m - h + padding))
    # a x a input tiles every m pixels (they overlap by 2): (C, N, th, tw, a, a), then one row per tile.
    tiles = xp.transpose(0, 1).unfold(2, a, m).unfold(3, a, m).reshape(c * t, a * a)
    v = (kron_b @ tiles.T).view(a * a, c, t)           # V = B^T d B for every tile:  (a*a, C, tiles)
    prod = torch.bmm(u, v)                             # M = U @ V per tile position: (a*a, K, tiles)
    if bias is not None:
        # A^T e1 e1^T A is all ones (column 1 of A^T is all ones): adding the bias to
        # position (1, 1) adds it to every output of the tile, at 1/(a*a) of the cost.
        prod[a + 1] += bias.view(k, 1)
    y = (kron_a @ prod.view(a * a, k * t)).view(m, m, k, n, th, tw)  # Y = A^T M A
    y = y.permute(3, 2, 4, 0, 5, 1).reshape(n, k, th * m, tw * m)   # tiles back into the image
    return y[:, :, :h, :w]


class WinogradConv2d(nn.Module):
    """Drop-in replacement for a 3x3, stride-1, padding-1 ``nn.Conv2d`` (inference only)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, m: int = 4, padding: int = 1):
        super().__init__()
        winograd_matrices(m)  # validates m
        self.m, self.padding = m, padding
        self.in_channels, self.out_channels = weight.shape[1], weight.shape[0]
        self.register_buffer("u", winograd_weight(weight, m))
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, m: int = 4) -> "WinogradConv2d":
        ok = (isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
              and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding in ((0, 0), (1, 1))
              and conv.padding_mode == "zeros")
        if not ok:
            raise ValueError(f"WinogradConv2d.from_conv: needs a 3x3 stride-1 ungrouped Conv2d with padding 0 or 1, "
                             f"got {conv}")
        return cls(conv.weight, conv.bias, m, conv.padding[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return winograd_conv3x3(x, self.u, self.bias, self.m, self.padding)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, F({self.m}x{self.m}, 3x3)"
