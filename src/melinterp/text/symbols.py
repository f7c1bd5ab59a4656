"""The default symbol table and the reserved ids.

Ids: ``PAD_ID = 0`` pads batches, ``BLANK_ID = 1`` is the Grad-TTS blank interspersed between symbols, and the
symbols of a table take ids ``2 .. len(symbols) + 1``, so a blank can never be mistaken for a phoneme.

The table holds single characters, the unit espeak-ng's IPA output is written in: a nasal vowel such as French
"ɔ̃" is "ɔ" followed by a combining tilde, two symbols.
"""

from __future__ import annotations

from collections import Counter

PAD_ID = 0
BLANK_ID = 1
NUM_RESERVED_IDS = 2

# What phonemizer keeps in place (preserve_punctuation=True), plus "-" and "'", which espeak-ng itself emits.
PUNCTUATION = ";:,.!?¡¿—…\"«»“”()-'"

# Every vowel and consonant letter of the IPA chart, plus the ones espeak-ng writes outside it
# ("ᵻ" English reduced vowel, "ɚ"/"ɝ" rhotic vowels, "ε" in Danish).
_VOWELS = "iyɨʉɯuɪʏʊeøɘəɵɤoɛœɜɞʌɔæɐaɶɑɒᵻɚɝε"
_PULMONIC_CONSONANTS = "pbtdʈɖcɟkɡqɢʔɴŋɲɳnɱmʙrʀⱱɾɽɸβfvθðszʃʒʂʐçʝxɣχʁħʕhɦɬɮʋɹɻjɰlɭʎʟɫ"
_OTHER_CONSONANTS = "ʍwɥʜʢʡɕʑɺɧʘɓǀɗǃʄǂɠǁʛ"
_STRESS_AND_LENGTH = "ˈˌːˑ"
_MODIFIER_LETTERS = "ʰʲʷ˞"  # aspirated, palatalised, labialised, rhotic
_COMBINING_DIACRITICS = (
    "\u0303"  # tilde: nasal vowel (French, Portuguese, Polish)
    "\u030a"  # ring above: voiceless (Czech)
    "\u031d"  # up tack below: raised (Czech ř)
    "\u0329"  # vertical line below: syllabic consonant (English "button", Czech, Croatian)
    "\u032a"  # bridge below: dental (Italian, Irish, Ukrainian)
    "\u032f"  # inverted breve below: non-syllabic (Danish, Irish)
    "\u033a"  # inverted bridge below: apical (Basque)
    "\u033b"  # square below: laminal (Basque)
    "\u0361"  # double inverted breve: tie bar of affricates (Latvian)
)

DEFAULT_SYMBOLS: tuple[str, ...] = tuple(
    " " + PUNCTUATION + _VOWELS + _PULMONIC_CONSONANTS + _OTHER_CONSONANTS + _STRESS_AND_LENGTH
    + _MODIFIER_LETTERS + _COMBINING_DIACRITICS
)


def validate_symbols(symbols: object) -> list[str]:
    """Return ``symbols`` as a list after checking it is a sequence of unique single-character strings."""
    if isinstance(symbols, str) or not isinstance(symbols, (list, tuple)):
        raise ValueError(
            f"symbols must be a list of single-character strings, got {type(symbols).__name__}"
            + (" (use list(...) to split a string into characters)" if isinstance(symbols, str) else "")
        )
    not_single = [s for s in symbols if not (isinstance(s, str) and len(s) == 1)]
    if not_single:
        raise ValueError(f"symbols must be single-character strings, got {not_single[:5]!r}")
    duplicates = [s for s, count in Counter(symbols).items() if count > 1]
    if duplicates:
        named = ", ".join(f"{s!r} (U+{ord(s):04X})" for s in duplicates)
        raise ValueError(f"symbols must be unique, but {named} appear more than once")
    return list(symbols)
