"""Small utilities shared by every stage: errors, file I/O, logging."""
