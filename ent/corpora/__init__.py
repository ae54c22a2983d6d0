"""Preparation of licensed emotion corpora into Kaldi-style data directories.

* :mod:`ent.corpora.iemocap`: IEMOCAP (release layout) → one data dir per
  session, the four-class protocol (neutral, happy + excited, angry, sad).
* :mod:`ent.corpora.zed`: the Zaion Emotion Dataset (ZED) annotation JSON → a
  data dir with ``emo_segments`` for emotion diarization.
* :mod:`ent.corpora.folds`: leave-one-session-out cross-validation folds with
  a speaker-disjoint validation set.
* :mod:`ent.corpora.report`: what a preparation read, kept and dropped, and why.
* :mod:`ent.corpora.record`: one prepared utterance and how a list of them is
  written as a data directory.

No preparation fails silently: every line that cannot be parsed, every
missing audio file and every dropped label is counted in a
:class:`~ent.corpora.report.PrepReport`, and an empty result is an error.
"""
