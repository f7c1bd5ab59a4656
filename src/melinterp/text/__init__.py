"""Text front end: normalisation, espeak-ng phonemisation and the phoneme-id table.

    text --normalize_text--> words --espeak-ng (phonemizer)--> IPA phonemes --symbol table--> ids (blanks interspersed)

Importing this package needs neither phonemizer nor espeakng_loader; only phonemising does.
"""

from .config import TextConfig
from .errors import TextError
from .normalize import normalize_text, number_to_words, ordinal_to_words, year_to_words
from .processor import TextProcessor, intersperse
from .split import MAX_CHUNK_CHARS, split_long_sentence, split_sentences
from .symbols import BLANK_ID, DEFAULT_SYMBOLS, PAD_ID, PUNCTUATION

__all__ = [
    "BLANK_ID",
    "DEFAULT_SYMBOLS",
    "MAX_CHUNK_CHARS",
    "PAD_ID",
    "PUNCTUATION",
    "TextConfig",
    "TextError",
    "TextProcessor",
    "intersperse",
    "normalize_text",
    "number_to_words",
    "ordinal_to_words",
    "split_long_sentence",
    "split_sentences",
    "year_to_words",
]
