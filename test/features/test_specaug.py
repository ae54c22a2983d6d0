"""Tests of the SpecAugment factory."""

import pytest
import torch

from ent.features.specaug import DEFAULT_SPECAUG, SpecAugment, build_specaug


def _feats():
    torch.manual_seed(0)
    return torch.randn(3, 120, 80), torch.tensor([120, 90, 50])


def test_changes_features_in_training():
    aug = build_specaug({"apply_time_warp": False})
    aug.train()
    x, lens = _feats()
    torch.manual_seed(1)
    y, y_lens = aug(x.clone(), lens)
    assert y.shape == x.shape
    assert torch.equal(y_lens, lens)
    changed = y != x
    assert changed.any()
    assert torch.all(y[changed] == 0)  # masks replace with zero


def test_freq_mask_only_masks_whole_bins():
    aug = build_specaug({"apply_time_warp": False, "apply_time_mask": False,
                         "freq_mask_width_range": [5, 10], "num_freq_mask": 1})
    aug.train()
    x, lens = _feats()
    y, _ = aug(x.clone(), lens)
    masked_bins = (y == 0).all(dim=1)  # (B, D): bins zero at every frame
    width = masked_bins.sum(dim=1)
    assert torch.all((width >= 5) & (width < 10))


def test_identity_in_eval():
    aug = build_specaug({})
    aug.eval()
    x, lens = _feats()
    y, y_lens = aug(x.clone(), lens)
    assert torch.equal(y, x) and torch.equal(y_lens, lens)


def test_time_warp_in_training_changes_values():
    aug = build_specaug({"apply_freq_mask": False, "apply_time_mask": False})
    aug.train()
    x, lens = _feats()
    torch.manual_seed(3)
    y, _ = aug(x.clone(), lens)
    assert not torch.allclose(y, x)


def test_config_handling():
    assert build_specaug(None) is None
    aug = build_specaug({})
    assert isinstance(aug, SpecAugment)
    assert aug.freq_mask.mask_width_range == DEFAULT_SPECAUG["freq_mask_width_range"]
    absolute = build_specaug({"time_mask_width_range": [0, 40]})
    assert absolute.time_mask.mask_width_range == (0, 40)
    with pytest.raises(ValueError, match="unknown specaug option"):
        build_specaug({"num_frequency_masks": 2})
