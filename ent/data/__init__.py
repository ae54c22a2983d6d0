"""Data layer: Kaldi-style data directories, audio loading, datasets and batching."""
