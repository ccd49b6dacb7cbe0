"""Unit 4 -- Fourier phase retrieval: an image from the magnitude of its Fourier transform.

The measurement is ``y = |F P x|``: ``P`` zero-pads the ``h x w`` image (at the top left) by ``pad`` per axis,
``F`` is the orthonormal 2-D DFT. What no method can recover: a circular shift and the 180° rotation (the "twin")
of the image.

Modules, in teaching order: :mod:`.fourier`, :mod:`.classical` (the lecture's ER, HIO and RAAR; the batched versions
run on :mod:`.engines`), :mod:`.metrics`, :mod:`.wavelets`, :mod:`.prdad` (the networks), :mod:`.losses`,
:mod:`.train`, :mod:`.shipped` (the shipped networks, ``refine``) and :mod:`.data`.

Command line: ``python -m course_lib.phase {train,evaluate}`` (see :mod:`.__main__`); benchmarks:
``python -m benchmarks phase`` in the repository.
"""
from __future__ import annotations

from .classical import (DEFAULT_CONSTRAINTS, PhaseRetrievalResult, alternating_projections, available_engines,
                        er_step, error_reduction, gerchberg_saxton, hio, hio_step, project_constraints,
                        project_magnitude, raar, raar_step)
from .data import (DATASET_NAMES, OFFLINE_DIGIT_HOLDOUT, Augment, PhaseDataset, augment_image, load_images,
                   offline_digit_split, padded_shape, parse_noise, read_array, read_idx, simulate_measurement,
                   torchvision_root)
from .fourier import (NOISE_KINDS, add_noise, combine_magnitude_phase, dft2_matrix, dft2_sum, dft_matrix,
                      fourier_magnitude, magnitude_phase, pad_image, padded_size, random_magnitude, random_phase,
                      snr_db, support_mask, swap_phase_magnitude, unpad_image)
from .metrics import (PROTOCOLS, align_to_target, best_of_twins, circular_shift, evaluate_reconstructions,
                      register_translation, rotate_180, rotation_invariant_mse)
from .losses import AutoEncoderLoss, autoencoder_loss, rotation_invariant_loss
from .prdad import (METHODS, PRDAD1, PRDAD2, DoubleConv, FCBlock, MagnitudeMLP, PRConfig, SparseAutoEncoder,
                    build_model, count_parameters, default_config, feature_shape, magnitude_features)
from .shipped import REGIMES, available, magnitude_error, pretrained, refine, regime_name
from .train import PhaseLoss, cosine_schedule, train_network
from .wavelets import (frequency_order, gini_index, haar_packet, haar_step, inverse_haar_packet, inverse_haar_step,
                       packet_mosaic, packet_paths, sparsity_stats)

__all__ = [
    # fourier
    "padded_size", "pad_image", "unpad_image", "support_mask", "fourier_magnitude", "dft_matrix", "dft2_matrix",
    "dft2_sum", "magnitude_phase", "combine_magnitude_phase", "swap_phase_magnitude", "random_phase",
    "random_magnitude", "NOISE_KINDS", "add_noise", "snr_db",
    # classical
    "DEFAULT_CONSTRAINTS", "PhaseRetrievalResult", "project_magnitude", "project_constraints", "er_step", "hio_step",
    "raar_step", "alternating_projections", "error_reduction", "gerchberg_saxton", "hio", "raar", "available_engines",
    # metrics
    "PROTOCOLS", "rotate_180", "circular_shift", "register_translation", "best_of_twins", "align_to_target",
    "rotation_invariant_mse", "evaluate_reconstructions",
    # wavelets
    "haar_step", "inverse_haar_step", "haar_packet", "inverse_haar_packet", "packet_paths", "frequency_order",
    "packet_mosaic", "sparsity_stats", "gini_index",
    # prdad
    "magnitude_features", "feature_shape", "rotation_invariant_loss", "FCBlock", "DoubleConv", "MagnitudeMLP",
    "PRDAD1", "SparseAutoEncoder", "autoencoder_loss", "AutoEncoderLoss", "PRDAD2", "PRConfig", "default_config",
    "build_model", "count_parameters", "METHODS",
    # train, pretrained
    "train_network", "PhaseLoss", "cosine_schedule",
    "REGIMES", "regime_name", "available", "pretrained", "refine", "magnitude_error",
    # data
    "read_idx", "read_array", "load_images", "offline_digit_split", "torchvision_root", "DATASET_NAMES",
    "OFFLINE_DIGIT_HOLDOUT", "padded_shape", "simulate_measurement", "parse_noise",
    "Augment", "augment_image", "PhaseDataset",
]
