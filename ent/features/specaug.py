"""SpecAugment, applied in training mode only.

:func:`build_specaug` builds ESPnet's :class:`espnet2.asr.specaug.specaug.SpecAug`
(time warping, frequency masks, time masks; Park et al., 2019) from a config
dict, wrapped so that it is the identity in evaluation mode (ESPnet's own
module leaves that check to the model).

Defaults (ESPnet's conformer recipes), every key of :data:`DEFAULT_SPECAUG`:

==============================  ===========  ===============================================
key                             default      meaning
==============================  ===========  ===============================================
apply_time_warp                 true         warp the time axis around a random point
time_warp_window                5            maximum warp distance (frames)
time_warp_mode                  bicubic      interpolation of the warp
apply_freq_mask                 true         mask bands of mel bins
freq_mask_width_range           [0, 27]      band width range (bins)
num_freq_mask                   2            number of bands
apply_time_mask                 true         mask spans of frames
time_mask_width_ratio_range     [0.0, 0.05]  span width as a fraction of the utterance length
time_mask_width_range           null         absolute span width (frames); replaces the ratio
num_time_mask                   5            number of spans
replace_with_zero               true         masked values become 0 (else the mean)
==============================  ===========  ===============================================
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Tuple

import torch
from espnet2.asr.specaug.specaug import SpecAug

DEFAULT_SPECAUG: Dict[str, Any] = {
    "apply_time_warp": True,
    "time_warp_window": 5,
    "time_warp_mode": "bicubic",
    "apply_freq_mask": True,
    "freq_mask_width_range": (0, 27),
    "num_freq_mask": 2,
    "apply_time_mask": True,
    "time_mask_width_ratio_range": (0.0, 0.05),
    "time_mask_width_range": None,
    "num_time_mask": 5,
    "replace_with_zero": True,
}


class SpecAugment(SpecAug):
    """ESPnet's SpecAug that does nothing in evaluation mode.

    ``forward(x: (B, T, D), x_lengths: (B,)) -> (x, x_lengths)``: in training
    mode the masked/warped features (``x`` may be modified in place), in
    evaluation mode ``x`` and ``x_lengths`` unchanged.
    """

    def forward(
        self, x: torch.Tensor, x_lengths: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        if not self.training:
            return x, x_lengths
        return super().forward(x, x_lengths)


def build_specaug(conf: Optional[Mapping[str, Any]]) -> Optional[SpecAugment]:
    """Build SpecAugment from a config dict.

    Args:
        conf: Keys of :data:`DEFAULT_SPECAUG` overriding the defaults (``{}``:
            all defaults); ``None`` disables SpecAugment. Setting
            ``time_mask_width_range`` drops the default ratio range.

    Returns:
        The module, or ``None`` when disabled.

    Raises:
        ValueError: On an unknown key.
    """
    if conf is None:
        return None
    unknown = sorted(set(conf) - set(DEFAULT_SPECAUG))
    if unknown:
        raise ValueError(f"unknown specaug option(s) {unknown}; known: {sorted(DEFAULT_SPECAUG)}")
    options = dict(DEFAULT_SPECAUG)
    if conf.get("time_mask_width_range") is not None and "time_mask_width_ratio_range" not in conf:
        options["time_mask_width_ratio_range"] = None
    options.update(conf)
    for key in ("freq_mask_width_range", "time_mask_width_range", "time_mask_width_ratio_range"):
        if isinstance(options[key], list):
            options[key] = tuple(options[key])
    return SpecAugment(**options)
