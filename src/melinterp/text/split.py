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
";" and ":" never end a sentence.

Long sentences: a sentence longer than ``max_chars`` (default `MAX_CHUNK_CHARS`, about 20 s of speech) is cut into
pieces of at most that many characters, as few as possible and as even as possible (`split_long_sentence`): at
clause boundaries (after ",", ";" or ":" and around dashes) where the clauses allow it, else between words, and a
"word" longer than ``max_chars`` (a run without spaces) every ``max_chars`` characters. Lengths are counted in
characters as written, before normalisation spells out numbers. The bound keeps the cost of a chunk about linear in
its length: with the bundled model (2 steps, one CPU thread) 200 and 400 characters took 13 and 11 ms per character,
1,600 characters 60 ms; the memory above the loaded model was 0.7 MiB per character at 400, 1.6 MiB at 1,600.
"""

from __future__ import annotations

import math
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


MAX_CHUNK_CHARS = 300  # about 20 s of speech, where the bundled model's cost per character is still flat

# a clause ends after ",", ";" or ":" before whitespace ("1,000" has none), or after a dash: a spaced "-", "--",
# "–" or "—", or an unspaced "—" ("left—quickly"); the mark stays with its clause
_CLAUSE_END = re.compile(r"(?<=[,;:–—])\s+|(?<=\s-)\s+|(?<=\s--)\s+|(?<=—)(?=\S)")


def split_sentences(text: str, max_chars: int | None = MAX_CHUNK_CHARS) -> list[str]:
    """The sentences of `text`, each stripped of surrounding whitespace and keeping its end punctuation; a sentence
    longer than `max_chars` characters is cut further into pieces of at most that length (`split_long_sentence`;
    ``None``: never).

    Blank text gives ``[]``; text without a sentence end gives ``[text.strip()]`` (cut if long). See the module
    docstring for what counts as a sentence end.

    Raises:
        TypeError: if `text` is not a str.
        ValueError: if `max_chars` is not a positive int or None.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}: {text!r:.80}")
    _check_max_chars(max_chars)
    sentences, start = [], 0
    for match in _CANDIDATE_END.finditer(text):
        if _ends_sentence(text, match):
            sentences.append(text[start:match.end("closing")].strip())
            start = match.end()
    sentences.append(text[start:].strip())
    if max_chars is None:
        return [sentence for sentence in sentences if sentence]
    return [piece for sentence in sentences if sentence for piece in split_long_sentence(sentence, max_chars)]


def split_long_sentence(sentence: str, max_chars: int = MAX_CHUNK_CHARS) -> list[str]:
    """`sentence` in pieces of at most `max_chars` characters: as few pieces as possible, as even as possible, cut
    at clause boundaries where the clauses fit, else between words (a run without spaces longer than `max_chars`
    every `max_chars` characters). Whitespace between pieces is dropped; a sentence that fits is returned whole.

        >>> split_long_sentence("We came, we saw, and then we left again", max_chars=20)
        ['We came, we saw,', 'and then we', 'left again']
    """
    _check_max_chars(max_chars)
    sentence = sentence.strip()
    if len(sentence) <= max_chars:
        return [sentence] if sentence else []
    units = []
    for clause in filter(None, _CLAUSE_END.split(sentence)):
        if len(clause) <= max_chars:
            units.append(clause)
            continue
        words = [word[i:i + max_chars] for word in clause.split() for i in range(0, len(word), max_chars)]
        units.extend(_pack(words, max_chars))
    return _pack(units, max_chars)


def _pack(units: list[str], max_chars: int) -> list[str]:
    """Join consecutive `units` (none longer than `max_chars`) with spaces into as few pieces of at most
    `max_chars` as possible, and of those packings the one whose longest piece is shortest."""
    fewest = len(_greedy(units, max_chars))
    low = max(max(map(len, units)), math.ceil((sum(map(len, units)) + len(units) - fewest) / fewest))
    high = max_chars
    while low < high:  # the shortest limit that still needs no more pieces
        middle = (low + high) // 2
        if len(_greedy(units, middle)) <= fewest:
            high = middle
        else:
            low = middle + 1
    return _greedy(units, low)


def _greedy(units: list[str], limit: int) -> list[str]:
    """Fill each piece with as many of the next units as fit in `limit` characters (joined by spaces)."""
    pieces: list[str] = []
    for unit in units:
        if pieces and len(pieces[-1]) + 1 + len(unit) <= limit:
            pieces[-1] += " " + unit
        else:
            pieces.append(unit)
    return pieces


def _check_max_chars(max_chars: object) -> None:
    if max_chars is not None and (isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1):
        raise ValueError(f"max_chars must be a positive number of characters or None, got {max_chars!r}")


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
