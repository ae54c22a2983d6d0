"""Synthetic speech corpora for ENT.

* :mod:`ent.synth.espeak`: eSpeak NG binding (ctypes over ``espeakng-loader``'s
  library, or the ``espeak-ng`` program).
* :mod:`ent.synth.grammar`: English sentence grammar with disjoint splits.
* :mod:`ent.synth.prosody`: the emotions as prosody distributions.
* :mod:`ent.synth.mini_emo`: the ``mini_emo`` corpus generator
  (``python -m ent.synth.mini_emo``).
"""
