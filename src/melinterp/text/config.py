"""``TextConfig``: everything that fixes how text becomes ids, saved beside a model as ``text_config.json``."""

from __future__ import annotations

from diffusers.configuration_utils import ConfigMixin, register_to_config

from .symbols import DEFAULT_SYMBOLS, validate_symbols

UNKNOWN_SYMBOL_POLICIES = ("error", "drop")


class TextConfig(ConfigMixin):
    """Configuration of the text front end.

    Args:
        language: espeak-ng language code ("en-us", "en-gb", "fr-fr", "de", ...). English text is normalised
            (numbers, abbreviations) before phonemisation; other languages rely on espeak-ng.
        symbols: the symbol table, a list of unique single-character strings; ``None`` means
            :data:`~melinterp.text.symbols.DEFAULT_SYMBOLS`. The resolved list is what the config stores, so a saved
            model keeps its exact table even if the default changes later.
        add_blank: intersperse the blank id between every two symbols and at both ends (Grad-TTS).
        with_stress: keep espeak-ng's primary/secondary stress marks "ˈ" "ˌ".
        preserve_punctuation: keep punctuation (pauses and intonation cues) in the phoneme string.
        unknown_symbols: what to do with a phoneme that is not in the table: ``"error"`` raises a TextError naming
            it, ``"drop"`` removes it with a warning.
    """

    config_name = "text_config.json"

    @register_to_config
    def __init__(
        self,
        language: str = "en-us",
        symbols: list[str] | None = None,
        add_blank: bool = True,
        with_stress: bool = True,
        preserve_punctuation: bool = True,
        unknown_symbols: str = "error",
    ):
        if not isinstance(language, str) or not language.strip():
            raise ValueError(f"language must be an espeak-ng language code such as 'en-us', got {language!r}")
        if unknown_symbols not in UNKNOWN_SYMBOL_POLICIES:
            raise ValueError(f"unknown_symbols must be one of {UNKNOWN_SYMBOL_POLICIES}, got {unknown_symbols!r}")
        resolved = validate_symbols(list(DEFAULT_SYMBOLS) if symbols is None else symbols)
        self.register_to_config(symbols=resolved)
