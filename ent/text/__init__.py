"""Text processing: transcript normalization and sentencepiece tokenizers."""

from ent.text.normalize import normalize_text
from ent.text.tokenizer import Tokenizer, read_token_list, train_tokenizer, write_token_list

__all__ = ["normalize_text", "Tokenizer", "train_tokenizer", "read_token_list", "write_token_list"]
