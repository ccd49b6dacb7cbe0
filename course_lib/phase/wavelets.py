"""The orthonormal 2-D Haar wavelet packet transform, in torch (PR-DAD I's encoding space).

Read top to bottom:

1. :func:`haar_step` / :func:`inverse_haar_step` -- one level of the 2-D Haar transform, written out on 2x2
   blocks as in the lecture: each block becomes one coefficient in each sub-band (pywt's names) A
   (approximation: low-pass in both directions), H (horizontal detail: high-pass along the rows axis), V
   (vertical detail: high-pass along the columns axis) and D (diagonal detail). Its 4x4 matrix is orthonormal,
   so the transform preserves energy (``sum x**2 == sum coeffs**2``) and its inverse is its transpose; the
   coefficients are exactly ``pywt.dwt2(x, 'haar', mode='periodization')``'s ``cA, (cH, cV, cD)``.
2. :func:`haar_packet` / :func:`inverse_haar_packet` -- the full packet tree: *every* sub-band (not only the
   low-pass one, as in the ordinary wavelet transform) is split again at each level.
3. :func:`packet_paths`, :func:`frequency_order`, :func:`packet_mosaic` -- which channel is which node of the
   tree, and a picture of all of them.
4. :func:`sparsity_stats` -- how concentrated the energy of a set of coefficients is (images are much sparser in
   the packet domain than in the pixel domain; PR-DAD I relies on it).

Packet tree and channel order
-----------------------------
``haar_packet(x, depth)`` maps ``(N, C, H, W) -> (N, C * 4**depth, H / 2**depth, W / 2**depth)``. Channel
``c * 4**depth + k`` holds node ``k`` of input channel ``c``, in pywt's **natural** order: write ``k`` in base 4
with ``depth`` digits, most significant first, and read digit ``0, 1, 2, 3`` as ``a, h, v, d`` -- that string is
the node's path in ``pywt.WaveletPacket2D(x, 'haar', mode='periodization', maxlevel=depth)`` (:func:`packet_paths`
lists them). Natural order is the order of the tree, not of frequency: for **frequency** order use
:func:`frequency_order`.

References: R. R. Coifman, M. V. Wickerhauser, "Entropy-based algorithms for best basis selection", IEEE Trans.
Inf. Theory 38(2), 1992 (wavelet packets). T. Gugel, S. Dekel, "Phase Retrieval Using Deep Auto-Decoders",
arXiv:2204.09051 (PR-DAD I). ``depth`` counts splits: the 16 sub-bands of 8x8 that the PR-DAD notes describe for
a 32x32 image are ``depth=2`` here (``4**2`` bands of ``32 / 2**2`` pixels); ``depth=3`` gives 64 bands of 4x4.

Example::

    >>> x = torch.rand(2, 1, 32, 32)
    >>> c = haar_packet(x, depth=2)              # (2, 16, 8, 8)
    >>> torch.allclose(inverse_haar_packet(c, 2), x, atol=1e-6)
    True
    >>> packet_paths(1)
    ['a', 'h', 'v', 'd']
"""
from __future__ import annotations

import math
from typing import Dict, List, Union

import torch

from ..core.checks import InputError, check_choice, check_int, check_number, check_tensor

__all__ = [
    "haar_step", "inverse_haar_step",
    "haar_packet", "inverse_haar_packet",
    "packet_paths", "frequency_order", "packet_mosaic",
    "sparsity_stats", "gini_index",
]

_BANDS = "ahvd"  # pywt's node names, in natural order


def _check_divisible(x: torch.Tensor, depth: int, fn: str) -> None:
    h, w = x.shape[-2:]
    k = 2 ** depth
    if h % k or w % k:
        raise InputError(f"{fn}: height and width must be divisible by 2**depth = {k} for depth {depth}, got shape "
                         f"{tuple(x.shape)} ({h}x{w}). Pad or resize the image (e.g. 28 -> 32), or use a smaller "
                         f"depth (28x28 allows depth <= 2).")


# ---- 1. One level -----------------------------------------------------------

def haar_step(x: torch.Tensor) -> torch.Tensor:
    """One level of the orthonormal 2-D Haar transform: ``(N, C, H, W) -> (N, 4C, H/2, W/2)``.

    For every 2x2 block ``[[a, b], [c, d]]``::

        A = (a + b + c + d) / 2,   H = (a + b - c - d) / 2,
        V = (a - b + c - d) / 2,   D = (a - b - c + d) / 2

    Output channel ``4c + k`` is band ``'ahvd'[k]`` of input channel ``c`` (``pywt.dwt2(x, 'haar', 'periodization')``).

    Example::

        >>> haar_step(torch.tensor([[[[1., 2.], [3., 5.]]]])).flatten()
        tensor([ 5.5000, -2.5000, -1.5000,  0.5000])
    """
    check_tensor(x, "haar_step: x", dims=4, shape_hint="(N, C, H, W)")
    _check_divisible(x, 1, "haar_step")
    n, c, h, w = x.shape
    # Split rows and columns into (block, position in block): no loop over pixels.
    blocks = x.reshape(n, c, h // 2, 2, w // 2, 2)
    a, b = blocks[:, :, :, 0, :, 0], blocks[:, :, :, 0, :, 1]
    cc, d = blocks[:, :, :, 1, :, 0], blocks[:, :, :, 1, :, 1]
    bands = torch.stack([(a + b + cc + d), (a + b - cc - d),
                         (a - b + cc - d), (a - b - cc + d)], dim=2) / 2
    return bands.reshape(n, 4 * c, h // 2, w // 2)


def inverse_haar_step(coeffs: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`haar_step`: ``(N, 4C, h, w) -> (N, C, 2h, 2w)``.

    The 4x4 matrix of :func:`haar_step` is orthonormal and symmetric, so the same sums and differences give the
    pixels back::

        a = (A + H + V + D) / 2,   b = (A + H - V - D) / 2,
        c = (A - H + V - D) / 2,   d = (A - H - V + D) / 2
    """
    check_tensor(coeffs, "inverse_haar_step: coeffs", dims=4, shape_hint="(N, C, H, W)")
    n, c4, h, w = coeffs.shape
    if c4 % 4:
        raise InputError(f"inverse_haar_step: the channels of coeffs must be a multiple of 4 "
                         f"(bands a, h, v, d per image channel), got shape {tuple(coeffs.shape)}")
    bands = coeffs.reshape(n, c4 // 4, 4, h, w)
    A, H, V, D = bands.unbind(dim=2)
    a, b = (A + H + V + D) / 2, (A + H - V - D) / 2
    cc, d = (A - H + V - D) / 2, (A - H - V + D) / 2
    top = torch.stack([a, b], dim=-1)       # (n, C, h, w, 2): a b next to each other
    bottom = torch.stack([cc, d], dim=-1)
    blocks = torch.stack([top, bottom], dim=3)  # (n, C, h, 2, w, 2)
    return blocks.reshape(n, c4 // 4, 2 * h, 2 * w)


# ---- 2. The packet tree -----------------------------------------------------

def haar_packet(x: torch.Tensor, depth: int) -> torch.Tensor:
    """Full 2-D Haar wavelet packet: ``(N, C, H, W) -> (N, C * 4**depth, H / 2**depth, W / 2**depth)``.

    Applies :func:`haar_step` ``depth`` times to *all* channels, so every sub-band is split again (the packet tree,
    not the wavelet pyramid). Orthonormal, differentiable and batched; any device and dtype. ``depth=0`` returns
    ``x`` unchanged. Channel order is pywt's natural order (:func:`packet_paths`): ``haar_packet(x, d)[n, k]``
    equals ``pywt.WaveletPacket2D(x[n, 0], 'haar', 'periodization', maxlevel=d)[packet_paths(d)[k]].data``.

    Raises ``ValueError`` when ``H`` or ``W`` is not divisible by ``2**depth``.
    """
    check_tensor(x, "haar_packet: x", dims=4, shape_hint="(N, C, H, W)")
    depth = check_int(depth, "haar_packet: depth", minimum=0)
    _check_divisible(x, depth, "haar_packet")
    for _ in range(depth):  # one loop per level; each level is a single reshape
        x = haar_step(x)
    return x


def inverse_haar_packet(coeffs: torch.Tensor, depth: int) -> torch.Tensor:
    """Inverse of :func:`haar_packet`: ``(N, C * 4**depth, h, w) -> (N, C, h * 2**depth, w * 2**depth)``."""
    check_tensor(coeffs, "inverse_haar_packet: coeffs", dims=4, shape_hint="(N, C, H, W)")
    depth = check_int(depth, "inverse_haar_packet: depth", minimum=0)
    if coeffs.shape[1] % (4 ** depth):
        raise InputError(f"inverse_haar_packet: the channels of coeffs must be a multiple of 4**depth = "
                         f"{4 ** depth} for depth {depth}, got shape {tuple(coeffs.shape)}")
    for _ in range(depth):
        coeffs = inverse_haar_step(coeffs)
    return coeffs


# ---- 3. Which channel is which node -----------------------------------------

def packet_paths(depth: int) -> List[str]:
    """pywt node paths of the ``4**depth`` channels of :func:`haar_packet`, in channel order.

    ``packet_paths(2)[:5] == ['aa', 'ah', 'av', 'ad', 'ha']`` -- ``[n.path for n in wp.get_level(2, 'natural')]``.
    """
    depth = check_int(depth, "packet_paths: depth", minimum=0)
    paths = [""]
    for _ in range(depth):
        paths = [p + b for p in paths for b in _BANDS]
    return paths


def _inverse_gray(bits: List[int]) -> int:
    """Frequency rank of a 1-D packet path (0 = low-pass, 1 = high-pass per level).

    Splitting a high-pass band mirrors its spectrum, so the natural order of the tree is the Gray code of the
    frequency order.
    """
    value, acc = 0, 0
    for bit in bits:
        acc ^= bit
        value = 2 * value + acc
    return value


def frequency_order(depth: int) -> torch.Tensor:
    """Channel permutation from natural to frequency order.

    ``coeffs[:, frequency_order(d)]`` lists the nodes as pywt's ``get_level(d, 'freq')`` grid read row by row:
    row ``i`` and column ``j`` of the ``2**d x 2**d`` grid is the node whose vertical frequency ranks ``i`` and
    horizontal frequency ranks ``j`` (0 = lowest). Returns an int64 tensor of length ``4**d``.
    """
    depth = check_int(depth, "frequency_order: depth", minimum=0)
    side = 2 ** depth
    order = torch.empty(side * side, dtype=torch.int64)
    for k, path in enumerate(packet_paths(depth)):
        # h and d are high-pass along rows (vertical frequency), v and d along columns.
        row = _inverse_gray([1 if ch in "hd" else 0 for ch in path])
        col = _inverse_gray([1 if ch in "vd" else 0 for ch in path])
        order[row * side + col] = k
    return order


def packet_mosaic(coeffs: torch.Tensor, depth: int, order: str = "freq") -> torch.Tensor:
    """Tile the ``4**depth`` sub-bands of one image channel into one picture, for display.

    ``(N, 4**depth, h, w) -> (N, 1, h * 2**depth, w * 2**depth)``: sub-band ``(i, j)`` of the grid goes to tile
    ``(i, j)``. With ``order='freq'`` the low frequencies sit at the top left, as in a spectrum; ``'natural'``
    follows the tree. Plot ``abs()`` (and perhaps a log scale) of the result.
    """
    check_tensor(coeffs, "packet_mosaic: coeffs", dims=4, shape_hint="(N, C, H, W)")
    depth = check_int(depth, "packet_mosaic: depth", minimum=0)
    if coeffs.shape[1] != 4 ** depth:
        raise InputError(f"packet_mosaic: coeffs must have 4**depth = {4 ** depth} channels (one image channel), "
                         f"got shape {tuple(coeffs.shape)}")
    if check_choice(order, ("freq", "natural"), "packet_mosaic: order") == "freq":
        coeffs = coeffs[:, frequency_order(depth).to(coeffs.device)]
    n, _, h, w = coeffs.shape
    side = 2 ** depth
    grid = coeffs.reshape(n, side, side, h, w).permute(0, 1, 3, 2, 4)  # (n, i, y, j, x)
    return grid.reshape(n, 1, side * h, side * w)


# ---- 4. Sparsity ------------------------------------------------------------

def gini_index(c: torch.Tensor) -> torch.Tensor:
    """Gini index of each row of ``c`` (shape ``(N, M)``): 0 for a constant, ``1 - 1/M`` for one spike.

    Hurley and Rickard, "Comparing Measures of Sparsity", IEEE Trans. Inf. Theory 55(10), 2009, eq. (G): with
    ``|c|`` sorted ascending, ``G = 1 - 2 * sum_k (|c|_(k) / ||c||_1) * (M - k + 1/2) / M``. A row of zeros gets 0.
    """
    check_tensor(c, "gini_index: c", dims=2, shape_hint="(N, M)")
    m = c.shape[1]
    s, _ = c.abs().sort(dim=1)
    k = torch.arange(1, m + 1, dtype=s.dtype, device=s.device)
    l1 = s.sum(dim=1, keepdim=True)
    g = 1 - 2 * ((s / l1.clamp_min(torch.finfo(s.dtype).tiny)) * (m - k + 0.5) / m).sum(dim=1)
    return torch.where(l1.squeeze(1) > 0, g, torch.zeros_like(g))


def sparsity_stats(coeffs: torch.Tensor, top: float = 0.05,
                   per_image: bool = False) -> Dict[str, Union[float, torch.Tensor]]:
    """How sparse each image's coefficients are (pixels, wavelet packets, a learned code, ...).

    ``coeffs``: ``(N, ...)`` -- everything after the first axis is one image. Returns a dict, averaged over the
    images (or per image, as tensors, when ``per_image=True``):

    * ``'energy_top'``: fraction of the energy ``sum c**2`` held by the largest ``top`` fraction of the
      coefficients (by magnitude, at least one). Close to 1: a few coefficients carry the image.
    * ``'gini'``: Gini index (:func:`gini_index`), in ``[0, 1)``; higher is sparser.
    * ``'l1_l2'``: ``||c||_1 / ||c||_2``, between 1 (one spike) and ``sqrt(M)`` (all equal); lower is sparser.
    * ``'hoyer'``: ``(sqrt(M) - l1_l2) / (sqrt(M) - 1)``, that ratio mapped to ``[0, 1]`` (Hoyer, JMLR 2004);
      higher is sparser.
    """
    check_tensor(coeffs, "sparsity_stats: coeffs (N, ...)")
    top = check_number(top, "sparsity_stats: top (a fraction)", low=0, high=1, low_open=True)
    c = coeffs.detach().reshape(coeffs.shape[0], -1).double()
    m = c.shape[1]
    energy = (c * c).sort(dim=1, descending=True).values
    k = max(1, int(math.ceil(top * m)))
    total = energy.sum(dim=1)
    tiny = torch.finfo(c.dtype).tiny
    l1 = c.abs().sum(dim=1)
    l2 = total.sqrt()
    l1_l2 = torch.where(l2 > 0, l1 / l2.clamp_min(tiny), torch.ones_like(l1))
    stats = {
        "energy_top": torch.where(total > 0, energy[:, :k].sum(dim=1) / total.clamp_min(tiny), torch.ones_like(total)),
        "gini": gini_index(c),
        "l1_l2": l1_l2,
        "hoyer": (math.sqrt(m) - l1_l2) / (math.sqrt(m) - 1) if m > 1 else torch.ones_like(l1),
    }
    if per_image:
        return {key: v.float() for key, v in stats.items()}
    return {key: float(v.mean()) for key, v in stats.items()}
