"""``TextProcessor``: text -> normalised text -> IPA phonemes -> ids, and ids -> phonemes."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence

from .config import TextConfig
from .errors import TextError
from .normalize import normalize_text
from .phonemize import phonemize_normalized
from .symbols import BLANK_ID, NUM_RESERVED_IDS, PAD_ID, PUNCTUATION


def intersperse(sequence: Sequence[int], item: int) -> list[int]:
    """Put ``item`` between every two elements and at both ends (Grad-TTS): ``[a, b]`` -> ``[i, a, i, b, i]``."""
    result = [item] * (2 * len(sequence) + 1)
    result[1::2] = sequence
    return result


def _describe(symbols: Iterable[str]) -> str:
    """ "'ʀ' (U+0280), '̰' (U+0330)": code points make combining marks and look-alikes readable."""
    return ", ".join(f"{s!r} (U+{ord(s):04X})" for s in symbols)


class TextProcessor:
    """Turns text into the phoneme ids a text encoder reads, as configured by a :class:`TextConfig`.

    Ids: 0 pads, 1 is the blank, symbol ``k`` of the table has id ``k + 2``; ``vocab_size = len(symbols) + 2``.

    Example:
        >>> processor = TextProcessor()
        >>> processor.phonemize("Hello world.")
        'həlˈoʊ wˈɜːld.'
        >>> ids = processor.encode("Hello world.")  # 2 * 14 + 1 ids, blanks at even positions
    """

    def __init__(self, config: TextConfig | None = None):
        if config is None:
            config = TextConfig()
        if not isinstance(config, TextConfig):
            raise TypeError(f"config must be a TextConfig, got {type(config).__name__}")
        self.config = config
        self._symbols: list[str] = list(config.config.symbols)
        self._symbol_to_id = {symbol: index + NUM_RESERVED_IDS for index, symbol in enumerate(self._symbols)}
        self._non_phonemes = set(PUNCTUATION) | {" "}

    # --- saving and loading --------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, subfolder: str | None = None,
                        **kwargs) -> TextProcessor:
        """Load from a directory (or Hub repository) holding ``text_config.json``; kwargs go to ``load_config``."""
        config_dict = TextConfig.load_config(pretrained_model_name_or_path, subfolder=subfolder, **kwargs)
        return cls(TextConfig.from_config(config_dict))

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        """Write ``text_config.json`` (language, options and the full symbol table) into ``save_directory``."""
        self.config.save_config(save_directory)

    # --- vocabulary ----------------------------------------------------------------------------------------------

    @property
    def symbols(self) -> list[str]:
        """The symbol table; symbol ``k`` has id ``k + 2``."""
        return list(self._symbols)

    @property
    def vocab_size(self) -> int:
        """Number of ids, the size of the text encoder's embedding: ``len(symbols) + 2`` (pad and blank)."""
        return len(self._symbols) + NUM_RESERVED_IDS

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def blank_id(self) -> int:
        return BLANK_ID

    # --- text -> phonemes ----------------------------------------------------------------------------------------

    def normalize(self, text: str, where: str = "") -> str:
        """Spell out numbers, dates and abbreviations (English) and collapse whitespace; see :func:`normalize_text`
        (``where`` goes into its error messages)."""
        return normalize_text(text, self.config.config.language, where)

    def phonemize(self, text: str) -> str:
        """IPA phonemes of ``text``, words separated by spaces: "Hello world." -> "həlˈoʊ wˈɜːld."."""
        return self.phonemize_batch([text])[0]

    def phonemize_batch(self, texts: Sequence[str]) -> list[str]:
        """Phonemes of many texts in one espeak-ng call (far faster than one call per text).

        Raises:
            TextError: naming the item, if a text is not a str, is blank, is not plain text or not in a script
                the language reads (see :func:`normalize_text`), or has no phonemes (only punctuation).
        """
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TextError(f"texts must be a list of str, got {type(texts).__name__}; use phonemize() for one text")
        several = len(texts) > 1
        where = [f" (item {index} of the batch)" if several else "" for index in range(len(texts))]
        normalized = [self.normalize(text, where[i]) for i, text in enumerate(texts)]
        config = self.config.config
        phonemes = phonemize_normalized(normalized, config.language, config.with_stress, config.preserve_punctuation)
        for index, (text, phoneme_string) in enumerate(zip(texts, phonemes)):
            if not set(phoneme_string) - self._non_phonemes:
                raise TextError(
                    f"text {text!r}{where[index]} phonemized to no phonemes (got {phoneme_string!r}): "
                    "it needs at least one word to speak"
                )
        return phonemes

    # --- phonemes <-> ids ----------------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``: normalise, phonemise, map symbols to ids, then intersperse blanks if ``add_blank``."""
        return self._encode(self.phonemize(text), source=f"text {text!r}")

    def encode_phonemes(self, phonemes: str) -> list[int]:
        """Ids of an IPA phoneme string (as :meth:`phonemize` returns), blanks interspersed if ``add_blank``."""
        if not isinstance(phonemes, str):
            raise TextError(f"phonemes must be a str, got {type(phonemes).__name__}")
        if not phonemes:
            raise TextError("phonemes are empty: expected an IPA string such as 'həlˈoʊ'")
        return self._encode(phonemes, source="")

    def _encode(self, phonemes: str, source: str) -> list[int]:
        origin = f"phonemes {phonemes!r}" + (f" of {source}" if source else "")
        unknown = [symbol for symbol in dict.fromkeys(phonemes) if symbol not in self._symbol_to_id]
        if unknown and self.config.config.unknown_symbols == "error":
            raise TextError(
                f"unknown symbols {_describe(unknown)} in {origin}: they are not in the symbol table; add them to "
                "TextConfig(symbols=...) (this changes vocab_size) or set unknown_symbols='drop'"
            )
        if unknown:
            warnings.warn(f"dropped unknown symbols {_describe(unknown)} from {origin}", stacklevel=3)
        ids = [self._symbol_to_id[symbol] for symbol in phonemes if symbol in self._symbol_to_id]
        if not ids:
            raise TextError(f"{origin} left no known symbols to encode")
        return intersperse(ids, BLANK_ID) if self.config.config.add_blank else ids

    def decode(self, ids: Iterable[int]) -> str:
        """The phoneme string of ``ids`` (a list, or a 1-D tensor/array), pad and blank ids dropped."""
        phonemes = []
        for token in ids:
            token = int(token)
            if token in (PAD_ID, BLANK_ID):
                continue
            if not NUM_RESERVED_IDS <= token < self.vocab_size:
                raise TextError(f"id {token} is outside the vocabulary: expected 0 .. {self.vocab_size - 1}")
            phonemes.append(self._symbols[token - NUM_RESERVED_IDS])
        return "".join(phonemes)
