"""Phonemisation with espeak-ng through phonemizer, using the espeak-ng library bundled by ``espeakng_loader``.

phonemizer and espeakng_loader are imported only when a backend is first needed, so the rest of the package
(and a training machine that reads precomputed ids) works without them. Creating a backend loads a language,
so one backend per (language, with_stress) is kept for the life of the process.

espeak-ng keeps its state (the loaded language, the text being read, the output buffer) in one process-wide C
library, so two threads inside it read each other's text. Every call into it, creating a backend included, holds
`ESPEAK_LOCK`: threads phonemise one at a time and each gets its own phonemes.
"""

from __future__ import annotations

import difflib
import functools
import logging
import re
import threading

from .errors import TextError

logger = logging.getLogger(__name__)

ESPEAK_LOCK = threading.RLock()  # espeak-ng's one library state: held around every call into it

# Punctuation kept in the phoneme string (phonemizer's marks less "[]{}", which are not in the symbol table; English
# normalisation turns them into parentheses, other languages let espeak-ng skip them). A run of marks is one piece,
# with its spaces; "." and "," between two digits ("3.5", "1,000") are part of a number, not punctuation.
PRESERVED_PUNCTUATION = ';:,.!?¡¿—…"«»“”()'
_MARKS_OUTSIDE_NUMBERS = re.escape(PRESERVED_PUNCTUATION.replace(".", "").replace(",", ""))
_PUNCTUATION_RUN = re.compile(r"((?:\s*(?:[" + _MARKS_OUTSIDE_NUMBERS + r"]|(?<!\d)[.,]|[.,](?!\d)))+\s*)")


class _DebugLogger(logging.LoggerAdapter):
    """Passes phonemizer's messages on at DEBUG level.

    phonemizer warns on every batch in which espeak-ng switches language for a word ("extra phones may appear");
    for TTS text that is routine, and a phone outside the symbol table still fails loudly at encoding time.
    Enable DEBUG on the ``melinterp.text.phonemize`` logger to see them.
    """

    def log(self, level, msg, *args, **kwargs):
        super().log(logging.DEBUG, msg, *args, **kwargs)


def _import_espeak_backend():
    try:
        import espeakng_loader
        from phonemizer.backend import EspeakBackend
        from phonemizer.backend.espeak.wrapper import EspeakWrapper
    except ImportError as error:
        raise ImportError(
            "phonemisation needs the phonemizer and espeakng-loader packages (pip install phonemizer "
            "espeakng-loader); on a machine without them, train from precomputed phoneme ids"
        ) from error
    EspeakWrapper.set_library(espeakng_loader.get_library_path())
    EspeakWrapper.set_data_path(espeakng_loader.get_data_path())
    return EspeakBackend


def _suggest(language: str, EspeakBackend) -> str:
    """ "; did you mean 'fr-fr', 'fr-be'?" from code prefixes, spelling and language names ("french")."""
    names = EspeakBackend.supported_languages()  # {"fr-fr": "French (France)", ...}
    query = language.lower()
    candidates = (
        [code for code in names if code.startswith(query + "-")]
        + difflib.get_close_matches(query, list(names), n=3)
        + [code for code, name in names.items() if name.lower().startswith(query)]
    )
    if not candidates:
        return f"; codes look like 'en-us', 'en-gb', 'fr-fr', 'de', 'es' ({len(names)} known)"
    return f"; did you mean {', '.join(repr(code) for code in list(dict.fromkeys(candidates))[:3])}?"


def espeak_backend(language: str, with_stress: bool = True):
    """The cached phonemizer ``EspeakBackend`` for ``language`` (an espeak-ng code such as "en-us", "fr-fr", "de").

    Words that espeak-ng reads in another language keep that language's phones; the "(fr)" flags around them are
    removed. Punctuation is handled by :func:`phonemize_normalized`, not by the backend.

    Raises:
        TextError: if espeak-ng does not know ``language``.
    """
    with ESPEAK_LOCK:  # two threads must not both build (and load a language into) the library at once
        return _cached_backend(language, with_stress)


@functools.lru_cache(maxsize=None)
def _cached_backend(language: str, with_stress: bool):
    EspeakBackend = _import_espeak_backend()
    if not EspeakBackend.is_supported_language(language):
        raise TextError(f"language {language!r} is not supported by espeak-ng{_suggest(language, EspeakBackend)}")
    return EspeakBackend(
        language,
        punctuation_marks=PRESERVED_PUNCTUATION,
        with_stress=with_stress,
        language_switch="remove-flags",
        logger=_DebugLogger(logger, {}),
    )


def phonemize_normalized(
    texts: list[str], language: str, with_stress: bool = True, preserve_punctuation: bool = True
) -> list[str]:
    """IPA phoneme strings, words separated by spaces, for already normalised one-line ``texts``.

    Each text is cut at its punctuation runs; all word pieces of all texts go to espeak-ng in one call, and the
    punctuation is put back between their phonemes (or dropped if not ``preserve_punctuation``). phonemizer's own
    ``preserve_punctuation`` is not used: it mis-splits a line whose mark also occurs inside a number
    ("3.5kg, then."), returning two lines for one and shifting every later text of the batch.
    """
    pieces = [_PUNCTUATION_RUN.split(text) for text in texts]  # [words, marks, words, ..., words]
    words = [piece for text_pieces in pieces for piece in text_pieces[0::2] if piece.strip()]
    with ESPEAK_LOCK:
        word_phonemes = espeak_backend(language, with_stress).phonemize(words, strip=True)
    if len(word_phonemes) != len(words):
        raise RuntimeError(f"phonemizer returned {len(word_phonemes)} lines for {len(words)}: phonemes would shift")
    word_phonemes = iter(word_phonemes)
    results = []
    for text_pieces in pieces:
        out = []
        for index, piece in enumerate(text_pieces):
            if index % 2:  # a punctuation run
                out.append(piece if preserve_punctuation else " ")
            elif piece.strip():
                out.append(next(word_phonemes))
        results.append(" ".join("".join(out).split()))
    return results
