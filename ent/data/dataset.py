"""The joint ASR + emotion dataset and its collate functions.

:class:`EmotionASRDataset` reads a Kaldi-style data directory
(:class:`~ent.data.datadir.DataDir`). Transcripts are normalized and
tokenized once, when the dataset is built, so bad transcripts fail early with
the file and line; audio is read lazily per item.

One item (``dataset[i]`` or ``dataset["utt-id"]``) is a dict:

===============  =========================  ====================================================
key              type / shape               content
===============  =========================  ====================================================
utt_id           str                        utterance id
speech           float32 (N,)               16 kHz mono waveform
text             int64 (U,)                 token ids (never 0 = ``<blank>``)
emotion          int                        utterance emotion index (``utt2emo``)
emo_intervals    float32 (K, 3)             rows ``[start_s, end_s, emotion index]`` from
                                            ``emo_segments`` (K = 0: no interval labels)
speech_cmvn      float32 (2, D)             only with ``speaker_cmvn``: mean and std of the
                                            utterance's speaker's features
speaker_prosody  float32 (2, K)             only with ``speaker_cmvn`` holding prosody statistics:
                                            mean and std of the speaker's prosody functionals
===============  =========================  ====================================================

:func:`collate` pads a list of items into a batch dict:

=====================  ===================  ================================================
key                    shape / dtype        padding
=====================  ===================  ================================================
speech                 (B, N_max) float32   0.0
speech_lengths         (B,) int64
text                   (B, U_max) int64     -1 (ESPnet's ``ignore_id``)
text_lengths           (B,) int64
emotion                (B,) int64
emo_intervals          (B, K_max, 3) f32    rows of -1 (K_max = 0 when no item has intervals)
emo_intervals_lengths  (B,) int64           number of real rows per item
speech_cmvn            (B, 2, D) float32    only when every item has it
speaker_prosody        (B, 2, K) float32    only when every item has it
utt_id                 list of B str
=====================  ===================  ================================================

Emotion intervals are a padded tensor rather than a list of lists so that the
batch moves to the GPU with ESPnet's ``to_device`` and splits along the batch
axis like every other tensor. An utterance with intervals is neutral outside
them; one without (length 0) only has its utterance-level label.

:func:`collate_espnet` returns ``(utt_ids, batch)`` without the ``utt_id``
key, the form ESPnet's ``Trainer`` expects from its data loaders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.utils.data import Dataset

from ent.data.datadir import DataDir
from ent.data.emotions import DEFAULT_EMOTIONS, emotion_to_index
from ent.text.tokenizer import Tokenizer
from ent.utils.errors import DataError

PathLike = Union[str, Path]
IGNORE_ID = -1


class EmotionASRDataset(Dataset):
    """Utterances with their token ids and emotion labels.

    Args:
        data_dir: A data directory path or a loaded :class:`DataDir`.
        tokenizer: Normalizes and tokenizes the transcripts.
        emotions: Emotion class names; index = class id.
        utt_ids: Restrict to these utterances (default: all, sorted).
        use_intervals: Read ``emo_segments``; False: every utterance comes
            without intervals (K = 0), as if the file were absent.
        speaker_cmvn: Per-utterance statistics of its speaker: a
            :class:`~ent.features.cmvn.SpeakerStats` (:func:`ent.features.cmvn.speaker_cmvn`),
            whose ``cmvn`` (2, D) is given to the model as ``speech_cmvn`` and
            ``prosody`` (2, K), if any, as ``speaker_prosody``; or a (2, D)
            array, the CMVN statistics alone. None: the model's global CMVN.

    Raises:
        DataError: On a transcript that is empty after normalization or
            tokenizes to nothing (naming ``text`` and the line), a missing or
            unknown emotion (naming ``utt2emo`` or ``emo_segments`` and the
            line), or an unknown utterance id.
    """

    def __init__(
        self,
        data_dir: Union[PathLike, DataDir],
        tokenizer: Tokenizer,
        emotions: Sequence[str] = DEFAULT_EMOTIONS,
        utt_ids: Optional[Sequence[str]] = None,
        use_intervals: bool = True,
        speaker_cmvn: Optional[Mapping[str, Any]] = None,
    ) -> None:
        self.data = data_dir if isinstance(data_dir, DataDir) else DataDir.load(data_dir, allow_empty_text=True)
        self.tokenizer = tokenizer
        self.emotions = list(emotions)
        emo_index = emotion_to_index(self.emotions)
        path = self.data.path
        text_lines = self.data.lines.get("text", {})
        if utt_ids is None:
            self.utt_ids: List[str] = self.data.utt_ids
        else:
            self.utt_ids = list(utt_ids)
            for utt in self.utt_ids:
                if utt not in self.data.text:
                    raise DataError(path / "text", None, f"utterance '{utt}' not found")
        self._index = {utt: i for i, utt in enumerate(self.utt_ids)}
        if speaker_cmvn is not None:
            missing = [utt for utt in self.utt_ids if utt not in speaker_cmvn]
            if missing:
                raise ValueError(f"{path}: no speaker CMVN statistics for '{missing[0]}' "
                                 f"({len(missing)} utterances)")
        self.speaker_cmvn = speaker_cmvn
        if len(self._index) != len(self.utt_ids):
            raise ValueError("utt_ids contains duplicates")

        self._tokens: List[np.ndarray] = []
        self._emotion: List[int] = []
        self._intervals: List[np.ndarray] = []
        for utt in self.utt_ids:
            raw = self.data.text[utt]
            norm = tokenizer.normalize(raw)
            if not norm:
                raise DataError(path / "text", text_lines.get(utt),
                                f"transcript of '{utt}' is empty after normalization: '{raw}'")
            ids = tokenizer.encode(norm, normalize=False)
            if not ids:
                raise DataError(path / "text", text_lines.get(utt),
                                f"transcript of '{utt}' tokenizes to nothing: '{raw}'")
            self._tokens.append(np.asarray(ids, dtype=np.int64))

            if utt not in self.data.utt2emo:
                raise DataError(path / "utt2emo", None, f"no emotion for utterance '{utt}'")
            emo = self.data.utt2emo[utt]
            if emo not in emo_index:
                raise DataError(path / "utt2emo", self.data.lines.get("utt2emo", {}).get(utt),
                                f"unknown emotion '{emo}' (classes: {' '.join(self.emotions)})")
            self._emotion.append(emo_index[emo])

            rows = []
            for iv in self.data.emotion_intervals(utt) if use_intervals else ():
                if iv.emotion not in emo_index:
                    raise DataError(path / "emo_segments", iv.lineno,
                                    f"unknown emotion '{iv.emotion}' (classes: {' '.join(self.emotions)})")
                rows.append((iv.start, iv.end, emo_index[iv.emotion]))
            self._intervals.append(np.asarray(rows, dtype=np.float32).reshape(-1, 3))

    def __len__(self) -> int:
        return len(self.utt_ids)

    def index_of(self, key: Union[int, str]) -> int:
        """Position of an item given its position or utterance id."""
        if isinstance(key, str):
            if key not in self._index:
                raise KeyError(f"utterance '{key}' not in the dataset")
            return self._index[key]
        return int(key)

    def __getitem__(self, key: Union[int, str]) -> Dict[str, Any]:
        """One item (see the module docstring); ``key`` is a position or an utterance id."""
        i = self.index_of(key)
        utt = self.utt_ids[i]
        item = {
            "utt_id": utt,
            "speech": self.data.load_audio(utt),
            "text": self._tokens[i],
            "emotion": self._emotion[i],
            "emo_intervals": self._intervals[i],
        }
        if self.speaker_cmvn is not None:
            stats = self.speaker_cmvn[utt]
            if isinstance(stats, tuple):  # SpeakerStats(cmvn, prosody)
                item["speech_cmvn"] = stats[0]
                if stats[1] is not None:
                    item["speaker_prosody"] = stats[1]
            else:
                item["speech_cmvn"] = stats
        return item

    def token_ids(self, key: Union[int, str]) -> np.ndarray:
        """Token ids (U,) of an item, without reading its audio."""
        return self._tokens[self.index_of(key)]


def _pad(seqs: List[torch.Tensor], value: float) -> torch.Tensor:
    """Stack (L_i, ...) tensors into (B, L_max, ...) padded with ``value``."""
    max_len = max(int(s.shape[0]) for s in seqs)
    out = seqs[0].new_full((len(seqs), max_len) + tuple(seqs[0].shape[1:]), value)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return out


def collate(batch: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Pad dataset items into a batch (keys and shapes in the module docstring).

    Args:
        batch: Items of :class:`EmotionASRDataset` (at least one).
    """
    if not batch:
        raise ValueError("cannot collate an empty batch")
    speech = [torch.as_tensor(np.asarray(b["speech"], dtype=np.float32)) for b in batch]
    text = [torch.as_tensor(np.asarray(b["text"], dtype=np.int64)) for b in batch]
    intervals = [torch.as_tensor(np.asarray(b["emo_intervals"], dtype=np.float32).reshape(-1, 3)) for b in batch]
    out = {
        "speech": _pad(speech, 0.0),
        "speech_lengths": torch.tensor([s.shape[0] for s in speech], dtype=torch.long),
        "text": _pad(text, IGNORE_ID),
        "text_lengths": torch.tensor([t.shape[0] for t in text], dtype=torch.long),
        "emotion": torch.tensor([int(b["emotion"]) for b in batch], dtype=torch.long),
        "emo_intervals": _pad(intervals, -1.0),
        "emo_intervals_lengths": torch.tensor([iv.shape[0] for iv in intervals], dtype=torch.long),
        "utt_id": [b["utt_id"] for b in batch],
    }
    for key in ("speech_cmvn", "speaker_prosody"):
        has = [key in b for b in batch]
        if any(has):
            if not all(has):
                raise ValueError(f"some items of the batch have {key} and some do not")
            out[key] = torch.as_tensor(np.stack([np.asarray(b[key], dtype=np.float32) for b in batch]))
    return out


def collate_espnet(batch: List[Dict[str, Any]]) -> Tuple[List[str], Dict[str, torch.Tensor]]:
    """:func:`collate` in ESPnet's loader form: ``(utt_ids, tensors)`` without ``utt_id``."""
    out = collate(batch)
    utt_ids = out.pop("utt_id")
    return utt_ids, out
