"""Sentence splitting: long text -> sentences the pipeline synthesises one by one and joins with short pauses.

A sentence ends at ``.``, ``!`` or ``?`` (or a run of them, "?!"), optionally followed by closing quotes or
brackets, when whitespace and then a capital letter, a digit or an opening quote follow:

    >>> split_sentences('Dr. Smith paid $3.50. "Why?" he asked. J. R. R. Tolkien wrote... Then he left!')
    ['Dr. Smith paid $3.50.', '"Why?" he asked.', 'J. R. R. Tolkien wrote... Then he left!']

Not sentence ends: decimals ("3.5": no whitespace), the abbreviations `normalize_text` spells out as words
("Mr.", "Dr.", "St.", "e.g.", ...; those that often end a sentence, such as "etc.", "Inc." and "p.m.", do end
one before a capital, as the normaliser reads them too), "No." / "Fig." / "Jan." before a number, dotted words ("U.S.",
"a.m."), initials ("J. R. R.") and ellipses ("..." or "…", which pause inside a sentence). When in doubt the text
is not split: a sentence too long costs memory, a split in the middle of one costs a pause where none belongs.
";" and ":" never split.
"""

from __future__ import annotations

import re

from .normalize import _ABBREVIATIONS, _MAY_END_SENTENCE

# terminal punctuation, closing quotes/brackets, whitespace; what follows is checked by `_ends_sentence`
_CANDIDATE_END = re.compile(r"""(?P<end>[.!?…]+)(?P<closing>["'”’»)\]]*)\s+(?=\S)""")
_OPENING = "\"'“‘«(["
# as `normalize_text` knows them (all-capitals too); those in _MAY_END_SENTENCE end a sentence before a capital
_ABBREVIATION_FORMS = {form for written in _ABBREVIATIONS for form in (written, written.upper())} | {
    "St", "ST", "cf", "viz", "ca"}
_DOTTED_WORD = re.compile(r"(?:[^\W\d_]{1,4}\.)+[^\W\d_]{1,4}")  # "U.S", "e.g", "Ph.D": letters only, not "3.50"
_BEFORE_NUMBER = {"no", "nos", "fig", "figs", "vol", "ch", "p", "pp", "sec", "art", "jan", "feb", "mar", "apr",
                  "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, each stripped of surrounding whitespace and keeping its end punctuation.

    Blank text gives ``[]``; text without a sentence end gives ``[text.strip()]``. See the module docstring for
    what counts as a sentence end.

    Raises:
        TypeError: if `text` is not a str.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r:.80}")
    sentences, start = [], 0
    for match in _CANDIDATE_END.finditer(text):
        if _ends_sentence(text, match):
            sentences.append(text[start:match.end("closing")].strip())
            start = match.end()
    sentences.append(text[start:].strip())
    return [sentence for sentence in sentences if sentence]


def _ends_sentence(text: str, match: re.Match) -> bool:
    """Whether the punctuation of `match` (a `_CANDIDATE_END`) ends a sentence."""
    end, following = match["end"], text[match.end()]
    if not (following.isupper() or following.isdigit() or following in _OPENING):
        return False
    if ".." in end or "…" in end:  # an ellipsis trails off inside a sentence
        return False
    if end != ".":  # "!", "?", "?!": never an abbreviation
        return True
    word = text[:match.start()].split()[-1:] or [""]
    word = word[0].lstrip(_OPENING)  # '("Dr.' -> 'Dr'
    if word.lower() in _MAY_END_SENTENCE:  # "etc.", "Inc.", "p.m.": read as a full stop by the normaliser too
        return True
    if word in _ABBREVIATION_FORMS or _DOTTED_WORD.fullmatch(word):  # "Mr.", "e.g.", "U.S."
        return False
    if len(word) == 1 and word.isalpha():  # an initial: "J. R. R. Tolkien"
        return False
    return not (word.lower() in _BEFORE_NUMBER and following.isdigit())  # "No. 5", "Jan. 3"
