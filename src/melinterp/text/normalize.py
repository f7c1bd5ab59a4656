"""Text normalisation: spell out what espeak-ng would read badly, before phonemisation.

For English, numbers, currency, percentages, times, dates and abbreviations become words ("$3.50" -> "three dollars
and fifty cents", "12/03/2024" -> "December third, twenty twenty-four", "Dr." -> "doctor": espeak-ng reads "Dr." as
"doctor" followed by a sentence break). For every other language espeak-ng's own number rules apply and only
whitespace is collapsed.

What espeak-ng would read wrongly in any language is refused with a message naming it, not guessed at: control
characters and markup (`check_text`; SSML and HTML tags are not interpreted), and letters of a script the language
cannot read (Chinese or Cyrillic in English text), which espeak-ng would spell out letter by letter.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Callable

from .errors import TextError, check_text

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


# --- dates ---------------------------------------------------------------------------------------------------------

_MONTHS = "January February March April May June July August September October November December".split()
_MONTH_NUMBERS = {name: number for number, name in enumerate(_MONTHS, start=1)} | {
    "Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "Jun": 6, "Jul": 7, "Aug": 8, "Sep": 9, "Sept": 9, "Oct": 10, "Nov": 11,
    "Dec": 12}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTH_NUMBERS, key=len, reverse=True)) + r")\b"
_NUMERIC_DATE = re.compile(r"(?<![\w/.-])(?P<first>\d{1,2})(?P<sep>[/-])(?P<second>\d{1,2})(?P=sep)"
                           r"(?P<year>\d{4}|\d{2})(?![\w/-]|\.\d)")
_ISO_DATE = re.compile(r"(?<![\w/.-])(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})(?![\w-]|\.\d)")
_MONTH_DAY = re.compile(r"\b" + _MONTH + r"\.?\s+(?P<day>\d{1,2})(?:st|nd|rd|th)?\b(?![:.,]\d)")
_DAY_MONTH = re.compile(r"(?P<the>\b[Tt]he\s+)?\b(?P<day>\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MONTH)


def _date_words(month: int, day: int, year: str | None, month_first: bool) -> str | None:
    """ "March twelfth, twenty twenty-four" (``month_first``) or "the twelfth of March, ..."; None if no date."""
    if not (1 <= month <= 12 and 1 <= day <= 31):
        return None
    words = (f"{_MONTHS[month - 1]} {ordinal_to_words(day)}" if month_first
             else f"the {ordinal_to_words(day)} of {_MONTHS[month - 1]}")
    return words if year is None else f"{words}, {_year_digits_to_words(year)}"


def _year_digits_to_words(digits: str) -> str:
    """ "2024" -> "twenty twenty-four"; a two-digit year as said: "99" -> "ninety-nine", "05" -> "oh five"."""
    if len(digits) == 4:
        return year_to_words(int(digits))
    return number_to_words(int(digits)) if digits[0] != "0" else f"oh {_ONES[int(digits[1])]}"


def _expand_dates(text: str, month_first: bool) -> str:
    """Numeric dates (12/03/2024, 3-7-25: month first when ``month_first``, unless only the other order is a date),
    ISO dates (2024-03-12) and named months with a day ("March 12", "Sept. 3", "4 July") become words."""
    def numeric(match: re.Match) -> str:
        first, second = int(match["first"]), int(match["second"])
        month, day = (first, second) if month_first else (second, first)
        if month > 12 >= day:  # only the other order is a date: 25/12/2024
            month, day = day, month
        return _date_words(month, day, match["year"], month_first) or match[0]

    text = _NUMERIC_DATE.sub(numeric, text)
    text = _ISO_DATE.sub(lambda m: _date_words(int(m["month"]), int(m["day"]), m["year"], month_first) or m[0], text)
    text = _MONTH_DAY.sub(lambda m: _date_words(_MONTH_NUMBERS[m["month"]], int(m["day"]), None, True) or m[0], text)

    def day_month(match: re.Match) -> str:  # "4 July", "the 4th of July": "the fourth of July"
        words = _date_words(_MONTH_NUMBERS[match["month"]], int(match["day"]), None, month_first=False)
        if words is None:
            return match[0]
        return match["the"] + words.removeprefix("the ") if match["the"] else words

    return _DAY_MONTH.sub(day_month, text)


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


# --- scripts -------------------------------------------------------------------------------------------------------

# Script (the first word of a letter's Unicode name) -> the espeak-ng languages (codes before any "-") that read it.
# espeak-ng spells a letter of any other script out by name ("Chinese letter", "Cyrillic pe"); Latin letters, and
# scripts not listed here, are left to it.
_SCRIPT_READERS = {
    "CYRILLIC": ("ru", "uk", "be", "bg", "mk", "sr", "kk", "ky", "tt", "ba", "cv", "nog"),
    "GREEK": ("el", "grc"),
    "ARABIC": ("ar", "fa", "ur", "sd", "ug"),
    "HEBREW": ("he",),
    "CJK": ("cmn", "yue", "hak", "ja"),
    "HIRAGANA": ("ja",), "KATAKANA": ("ja",), "HANGUL": ("ko",),
    "DEVANAGARI": ("hi", "mr", "ne", "kok"), "BENGALI": ("bn", "as", "bpy"), "GURMUKHI": ("pa",),
    "GUJARATI": ("gu",), "ORIYA": ("or",), "TAMIL": ("ta",), "TELUGU": ("te",), "KANNADA": ("kn",),
    "MALAYALAM": ("ml",), "SINHALA": ("si",), "THAI": ("th",), "MYANMAR": ("my", "shn"), "GEORGIAN": ("ka",),
    "ARMENIAN": ("hy", "hyw"), "ETHIOPIC": ("am", "ti"),
}


def _script(char: str) -> str:
    return unicodedata.name(char, "").split(" ")[0]


def _check_scripts(text: str, language: str, where: str) -> None:
    """Refuse letters espeak-ng would spell out one by one in ``language``: say which, and name the option.

    A lone Greek letter is kept in any language: espeak-ng reads it by its name ("the α particle" -> "alpha").
    """
    if text.isascii():
        return
    code = language.lower().split("-")[0]
    unreadable: dict[str, tuple[int, str]] = {}  # letter -> (first index, script)
    for index, char in enumerate(text):
        if not char.isalpha() or char in unreadable:
            continue
        script = _script(char)
        if code in _SCRIPT_READERS.get(script, (code,)):
            continue
        if script == "GREEK" and not any(0 <= i < len(text) and text[i].isalpha() and _script(text[i]) == "GREEK"
                                         for i in (index - 1, index + 1)):
            continue
        unreadable[char] = (index, script)
    if unreadable:
        shown = ", ".join(f"{char!r} (U+{ord(char):04X}, {script})"
                          for char, (_, script) in list(unreadable.items())[:5])
        first_index, first_script = next(iter(unreadable.values()))
        raise TextError(
            f"text{where} holds letters that espeak-ng cannot read in language {language!r}: {shown} (the first at "
            f"index {first_index}); it would spell them out one by one. Give text in the Latin alphabet, or set the "
            f"language option to one that reads them (TextConfig(language={_SCRIPT_READERS[first_script][0]!r}), "
            "with a model trained on it)")


# Invisible characters that espeak-ng reads as a word break: a word with a soft hyphen or a zero-width space in it
# would be read as two
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u2060\ufeff"))


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


def normalize_text(text: str, language: str = "en-us", where: str = "") -> str:
    """Normalise ``text`` for phonemisation in ``language`` (an espeak-ng language code).

    English ("en", "en-us", "en-gb", ...): quotes and dashes, abbreviations, dates, then numbers are spelled out,
    e.g. ``"Dr. Smith paid $3.50 on 12/03/2024"`` -> ``"doctor Smith paid three dollars and fifty cents on December
    third, twenty twenty-four"``. Numeric dates are read month first in American English ("en-us") and day first
    in the others ("the twelfth of March"), unless only the other order is a date (25/12/2024); ISO dates
    (2024-03-12) and named months ("March 12", "Sept. 3", "4 July") are read too. Other languages: whitespace is
    collapsed and the rest is left to espeak-ng. In every language soft hyphens and zero-width spaces are dropped.

    Raises:
        TextError: naming the problem (and ``where``, e.g. " (item 2 of the batch)"): ``text`` is not a str, is
            blank, holds a control character or markup (`check_text`: SSML and HTML tags are refused, not read),
            or holds letters of a script that espeak-ng cannot read in ``language`` (Chinese, Cyrillic, Arabic ...
            in English), which it would spell out one by one. Latin letters with accents ("café") are fine in
            every language.
    """
    check_text(text, where)
    _check_scripts(text, language, where)
    text = text.translate(_INVISIBLE)
    if language.lower().startswith("en"):
        text = _normalize_punctuation(text)
        text = _expand_abbreviations(text)
        text = _expand_dates(text, month_first=language.lower().startswith("en-us"))
        text = _expand_numbers(text)
    return collapse_whitespace(text)
