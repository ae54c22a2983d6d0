"""Training tasks built on ESPnet's ``AbsTask`` (argument parsing, Trainer, checkpoints)."""
