"""Text normalisation: spell out what espeak-ng would read badly, before phonemisation.

For English, numbers, currency, percentages, times and abbreviations become words ("$3.50" -> "three dollars and
fifty cents", "Dr." -> "doctor": espeak-ng reads "Dr." as "doctor" followed by a sentence break). For every other
language espeak-ng's own number rules apply and only whitespace is collapsed.
"""

from __future__ import annotations

import re
from typing import Callable

from .errors import check_text

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = "_ thousand million billion trillion quadrillion".split()
_IRREGULAR_ORDINALS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth", "nine": "ninth",
    "twelve": "twelfth",
}


def number_to_words(number: int) -> str:
    """English cardinal, American style (no "and"): 101 -> "one hundred one", -7 -> "minus seven".

    Numbers of 10**18 and above are read digit by digit.
    """
    if number < 0:
        return "minus " + number_to_words(-number)
    if number < 20:
        return _ONES[number]
    if number < 100:
        tens, ones = divmod(number, 10)
        return _TENS[tens] + (f"-{_ONES[ones]}" if ones else "")
    if number < 1000:
        hundreds, rest = divmod(number, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_to_words(rest)}" if rest else "")
    if number >= 1000 ** len(_SCALES):
        return digits_to_words(str(number))
    groups = []  # three-digit groups, least significant first
    while number:
        number, group = divmod(number, 1000)
        groups.append(group)
    words = [
        number_to_words(group) + (f" {_SCALES[scale]}" if scale else "")
        for scale, group in reversed(list(enumerate(groups)))
        if group
    ]
    return " ".join(words)


def ordinal_to_words(number: int) -> str:
    """English ordinal: 1 -> "first", 22 -> "twenty-second", 100 -> "one hundredth"."""
    cardinal = number_to_words(number)
    head, last = re.match(r"(.*?)([a-z]+)$", cardinal).groups()
    if last in _IRREGULAR_ORDINALS:
        return head + _IRREGULAR_ORDINALS[last]
    if last.endswith("y"):
        return head + last[:-1] + "ieth"
    return head + last + "th"


def year_to_words(year: int) -> str:
    """A year read in pairs: 1999 -> "nineteen ninety-nine", 1905 -> "nineteen oh five", 2005 -> "two thousand five"."""
    century, rest = divmod(year, 100)
    if not 1100 <= year <= 2099 or 2000 <= year < 2010:
        return number_to_words(year)
    if rest == 0:
        return f"{number_to_words(century)} hundred"
    if rest < 10:
        return f"{number_to_words(century)} oh {number_to_words(rest)}"
    return f"{number_to_words(century)} {number_to_words(rest)}"


def digits_to_words(digits: str) -> str:
    """Read a digit string one digit at a time: "07" -> "zero seven"."""
    return " ".join(_ONES[int(d)] for d in digits)


def decimal_to_words(integer_part: str, fraction_part: str) -> str:
    """ "3", "14" -> "three point one four" (the fraction is read digit by digit)."""
    return f"{_integer_to_words(integer_part)} point {digits_to_words(fraction_part)}"


def _integer_to_words(digits: str) -> str:
    """A written integer, possibly with thousands commas; leading zeros ("007") are read digit by digit."""
    digits = digits.replace(",", "")
    if len(digits) > 1 and digits.startswith("0"):
        return digits_to_words(digits)
    return number_to_words(int(digits))


def _plural(word: str) -> str:
    """Plural of the last word of a number: "nineteen nineties", "nineteen hundreds", "sixes"."""
    if word.endswith("y"):
        return word[:-1] + "ies"
    if word.endswith(("s", "x")):
        return word + "es"
    return word + "s"


# --- currency ------------------------------------------------------------------------------------------------------

# symbol -> (unit singular, unit plural, hundredth singular, hundredth plural)
_CURRENCIES = {
    "$": ("dollar", "dollars", "cent", "cents"),
    "£": ("pound", "pounds", "penny", "pence"),
    "€": ("euro", "euros", "cent", "cents"),
}


def _count(number: int, singular: str, plural: str) -> str:
    return f"{number_to_words(number)} {singular if number == 1 else plural}"


def _currency(match: re.Match) -> str:
    unit, units, hundredth, hundredths = _CURRENCIES[match["symbol"]]
    integer_part, fraction_part, scale = match["integer"], match["fraction"], match["scale"]
    if scale:  # "$1.5 million" -> "one point five million dollars"
        amount = decimal_to_words(integer_part, fraction_part) if fraction_part else _integer_to_words(integer_part)
        return f"{amount} {scale.lower()} {units}"
    if fraction_part is not None and len(fraction_part) != 2:  # "$3.5" -> "three point five dollars"
        return f"{decimal_to_words(integer_part, fraction_part)} {units}"
    whole = int(integer_part.replace(",", ""))
    cents = int(fraction_part or 0)
    if whole and cents:
        return f"{_count(whole, unit, units)} and {_count(cents, hundredth, hundredths)}"
    if cents:
        return _count(cents, hundredth, hundredths)
    return _count(whole, unit, units)


# --- abbreviations -------------------------------------------------------------------------------------------------

# As written; the all-capitals form ("DR.", "A.M.") is accepted too. Case matters otherwise: "ms." after a number
# is milliseconds, not "Ms.".
_ABBREVIATIONS = {
    "Mr": "mister", "Mrs": "missus", "Ms": "miz", "Dr": "doctor", "Prof": "professor", "Jr": "junior",
    "Sr": "senior", "Rev": "reverend", "Gen": "general", "Capt": "captain", "Col": "colonel", "Lt": "lieutenant",
    "Sgt": "sergeant", "Mt": "mount", "Ave": "avenue", "Rd": "road", "Blvd": "boulevard", "Dept": "department",
    "Inc": "incorporated", "Ltd": "limited", "Co": "company", "Corp": "corporation", "approx": "approximately",
    "vs": "versus", "etc": "et cetera", "e.g": "for example", "i.e": "that is", "a.m": "A M", "p.m": "P M",
}
_ABBREVIATION_FORMS = {form: words for written, words in _ABBREVIATIONS.items() for form in (written, written.upper())}
# Abbreviations that often end a sentence: before a capitalised word their period is kept as a full stop.
_MAY_END_SENTENCE = {"jr", "sr", "inc", "ltd", "co", "corp", "etc", "a.m", "p.m"}
_ABBREVIATION_PATTERN = re.compile(
    r"(?<![\w.])(?P<abbr>" + "|".join(map(re.escape, sorted(_ABBREVIATION_FORMS, key=len, reverse=True))) + r")\."
)


def _expand_abbreviations(text: str) -> str:
    def expand(match: re.Match) -> str:
        rest = match.string[match.end():]
        may_end_sentence = match["abbr"].lower() in _MAY_END_SENTENCE
        ends_sentence = not rest.strip() or (may_end_sentence and re.match(r"\s+[A-Z]", rest))
        return _ABBREVIATION_FORMS[match["abbr"]] + ("." if ends_sentence else "")

    text = re.sub(r"\bNo\.(?=\s*\d)", "number", text, flags=re.IGNORECASE)
    # "St. John" is a saint, "Main St." a street: tell them apart by the capitalised word that follows a saint.
    text = re.sub(r"(?<![\w.])St\.(?=\s+[A-Z])", "Saint", text)
    text = re.sub(r"(?<![\w.])St\.(?=\s*$)", "Street.", text)
    text = re.sub(r"(?<![\w.])St\.", "Street", text)
    return _ABBREVIATION_PATTERN.sub(expand, text)


# --- numbers -------------------------------------------------------------------------------------------------------

_INTEGER = r"\d{1,3}(?:,\d{3})+|\d+"  # "1,000,000" or "1000000"


def _time(match: re.Match) -> str:
    hour, minute = int(match["hour"]), int(match["minute"])
    if minute == 0:
        return f"{number_to_words(hour)} o'clock"
    minute_words = f"oh {number_to_words(minute)}" if minute < 10 else number_to_words(minute)
    return f"{number_to_words(hour)} {minute_words}"


def _integer(match: re.Match) -> str:
    digits = match[0]
    if "," not in digits and len(digits) == 4 and not digits.startswith("0"):
        return year_to_words(int(digits))  # a bare four-digit number is most often a year
    return _integer_to_words(digits)


# (pattern, replacement), applied in order: currency before decimals, decimals before integers, and so on.
_NUMBER_RULES: list[tuple[re.Pattern, Callable[[re.Match], str]]] = [
    (
        re.compile(
            r"(?P<symbol>[$£€])\s?(?P<integer>" + _INTEGER + r")(?:\.(?P<fraction>\d+))?"
            r"(?:\s+(?P<scale>thousand|million|billion|trillion)\b)?",
            re.IGNORECASE,
        ),
        _currency,
    ),
    (re.compile(r"(?<![\w.,])-(?=\d)"), lambda m: "minus "),
    (re.compile(r"(?P<number>(?:" + _INTEGER + r")(?:\.\d+)?)\s?%"), lambda m: f"{m['number']} percent"),
    (re.compile(r"\b(?P<hour>[01]?\d|2[0-3]):(?P<minute>[0-5]\d)\b"), _time),
    (
        re.compile(r"\b(?P<number>" + _INTEGER + r")(?:st|nd|rd|th)\b", re.IGNORECASE),
        lambda m: ordinal_to_words(int(m["number"].replace(",", ""))),
    ),
    (re.compile(r"\b(?P<year>\d{4})s\b"), lambda m: _plural(year_to_words(int(m["year"])))),
    (
        re.compile(r"(?<![\w.])(?P<integer>" + _INTEGER + r")\.(?P<fraction>\d+)(?!\w|\.\d)"),
        lambda m: decimal_to_words(m["integer"], m["fraction"]),
    ),
    # Digits glued to letters or dots ("MP3", "5kg", "1.2.3") are left to espeak-ng, which reads them sensibly.
    (re.compile(r"(?<![\w.])(?:" + _INTEGER + r")(?!\w|\.\d)"), _integer),
]


def _expand_numbers(text: str) -> str:
    for pattern, replacement in _NUMBER_RULES:
        text = pattern.sub(replacement, text)
    return text


# --- punctuation ---------------------------------------------------------------------------------------------------

_PUNCTUATION_RULES = [
    (re.compile(r"[’‘‚‛′]"), "'"),  # typographic apostrophes, so espeak-ng sees "it's"
    (re.compile(r"[“”„‟″]"), '"'),
    (re.compile(r"(?<=\d)\s?[–‒]\s?(?=\d)"), " to "),  # "1990–1995"
    (re.compile(r"\s*(?:--+|[–‒―])\s*"), " — "),  # en dash, figure dash, "--" used as a dash
    (re.compile(r"[\[{]"), "("),  # phonemizer would keep brackets, which are not in the symbol table
    (re.compile(r"[\]}]"), ")"),
    (re.compile(r"&"), " and "),
]


def _normalize_punctuation(text: str) -> str:
    for pattern, replacement in _PUNCTUATION_RULES:
        text = pattern.sub(replacement, text)
    return text


def collapse_whitespace(text: str) -> str:
    """Trim and turn every run of whitespace (newlines included) into one space."""
    return " ".join(text.split())


def normalize_text(text: str, language: str = "en-us") -> str:
    """Normalise ``text`` for phonemisation in ``language`` (an espeak-ng language code).

    English ("en", "en-us", "en-gb", ...): quotes and dashes, abbreviations, then numbers are spelled out, e.g.
    ``"Dr. Smith paid $3.50 on the 22nd"`` -> ``"doctor Smith paid three dollars and fifty cents on the
    twenty-second"``. Other languages: whitespace is collapsed and the rest is left to espeak-ng.

    Raises:
        TextError: if ``text`` is not a str or is empty or blank.
    """
    check_text(text)
    if language.lower().startswith("en"):
        text = _normalize_punctuation(text)
        text = _expand_abbreviations(text)
        text = _expand_numbers(text)
    return collapse_whitespace(text)
