"""Command-line tools, each run as ``python -m ent.bin.<name>``."""
