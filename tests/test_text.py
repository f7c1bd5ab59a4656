"""Text front end: normalisation, symbol table and ids, espeak-ng phonemisation, config round trip, errors."""

from __future__ import annotations

import importlib.util
import logging
import random
import re
import subprocess
import sys
import warnings

import pytest
import torch

from melinterp.text import (
    BLANK_ID,
    DEFAULT_SYMBOLS,
    PAD_ID,
    PUNCTUATION,
    TextConfig,
    TextError,
    TextProcessor,
    intersperse,
    normalize_text,
    number_to_words,
    ordinal_to_words,
    year_to_words,
)
from melinterp.text.phonemize import espeak_backend

requires_phonemizer = pytest.mark.skipif(
    importlib.util.find_spec("phonemizer") is None or importlib.util.find_spec("espeakng_loader") is None,
    reason="phonemizer and espeakng-loader are not installed",
)


@pytest.fixture(scope="module")
def processor():
    return TextProcessor()


def table_without(removed: str) -> list[str]:
    return [symbol for symbol in DEFAULT_SYMBOLS if symbol not in removed]


# --- number words --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("number, words", [
    (0, "zero"), (7, "seven"), (13, "thirteen"), (21, "twenty-one"), (40, "forty"), (100, "one hundred"),
    (101, "one hundred one"), (999, "nine hundred ninety-nine"), (1000, "one thousand"),
    (1001, "one thousand one"), (12345, "twelve thousand three hundred forty-five"), (1_000_000, "one million"),
    (2_000_000_017, "two billion seventeen"), (-7, "minus seven"),
])
def test_number_to_words(number, words):
    assert number_to_words(number) == words


@pytest.mark.parametrize("number, words", [
    (1, "first"), (2, "second"), (3, "third"), (4, "fourth"), (5, "fifth"), (8, "eighth"), (9, "ninth"),
    (11, "eleventh"), (12, "twelfth"), (20, "twentieth"), (22, "twenty-second"), (100, "one hundredth"),
    (101, "one hundred first"), (1_000_000, "one millionth"),
])
def test_ordinal_to_words(number, words):
    assert ordinal_to_words(number) == words


@pytest.mark.parametrize("year, words", [
    (1999, "nineteen ninety-nine"), (1905, "nineteen oh five"), (1900, "nineteen hundred"),
    (2000, "two thousand"), (2005, "two thousand five"), (2010, "twenty ten"), (2024, "twenty twenty-four"),
    (1000, "one thousand"), (3000, "three thousand"),
])
def test_year_to_words(year, words):
    assert year_to_words(year) == words


# --- normalisation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("I have 3 cats.", "I have three cats."),
    ("It is -5 outside.", "It is minus five outside."),
    ("Pi is 3.14, or 3.5 rounded.", "Pi is three point one four, or three point five rounded."),
    ("Add 0.5 cups.", "Add zero point five cups."),
    ("1,000,000 people", "one million people"),
    ("Agent 007", "Agent zero zero seven"),
    ("the 1st, 2nd, 3rd, 22nd and 101st", "the first, second, third, twenty-second and one hundred first"),
    ("In 1999 and 2024.", "In nineteen ninety-nine and twenty twenty-four."),
    ("The 1990s.", "The nineteen nineties."),
    ("It costs $5.", "It costs five dollars."),
    ("It costs $1.", "It costs one dollar."),
    ("It costs $3.50.", "It costs three dollars and fifty cents."),
    ("Only $0.01 left", "Only one cent left"),
    ("About $1.5 million", "About one point five million dollars"),
    ("£2 and £0.50", "two pounds and fifty pence"),
    ("€1,200", "one thousand two hundred euros"),
    ("50% of 12.5%", "fifty percent of twelve point five percent"),
    ("at 3:05 or 10:00", "at three oh five or ten o'clock"),
    ("1990–1995", "nineteen ninety to nineteen ninety-five"),
    ("MP3 files", "MP3 files"),  # digits glued to letters are left to espeak-ng
])
def test_normalize_numbers(text, expected):
    assert normalize_text(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("Dr. Smith is here.", "doctor Smith is here."),
    ("Mr. and Mrs. Brown met Ms. Green", "mister and missus Brown met miz Green"),
    ("Prof. Lee vs. Dr. Kim", "professor Lee versus doctor Kim"),
    ("St. Paul lives on Main St.", "Saint Paul lives on Main Street."),
    ("He lives on Main St. in town", "He lives on Main Street in town"),
    ("apples, pears, etc.", "apples, pears, et cetera."),
    ("fruit, e.g. apples, i.e. food", "fruit, for example apples, that is food"),
    ("Acme Inc. and Widgets Ltd. agreed", "Acme incorporated and Widgets limited agreed"),
    ("John Smith Jr. arrived", "John Smith junior arrived"),
    ("It is No. 5 at 7 a.m. today", "It is number five at seven A M today"),
    ("DR. WHO at 9 A.M. Then", "doctor WHO at nine A M. Then"),
    ("It took 10 ms. Then it stopped", "It took ten ms. Then it stopped"),  # case matters: not "Ms."
])
def test_normalize_abbreviations(text, expected):
    assert normalize_text(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("  Hello \n\t world  ", "Hello world"),
    ("it’s “quoted” ‘here’", "it's \"quoted\" 'here'"),
    ("wait -- now – go", "wait — now — go"),
    ("see [this] and {that}", "see (this) and (that)"),
    ("salt & pepper", "salt and pepper"),
])
def test_normalize_punctuation_and_whitespace(text, expected):
    assert normalize_text(text) == expected


def test_other_languages_only_collapse_whitespace():
    assert normalize_text("J'ai  3 chats\n et 2,5 kg.", language="fr-fr") == "J'ai 3 chats et 2,5 kg."
    assert normalize_text("Dr. Müller hat 12 €", language="de") == "Dr. Müller hat 12 €"


@pytest.mark.parametrize("text, message", [
    ("", "text is empty"), ("   \n ", "text is empty"), (None, "text must be a str, got NoneType"),
    (42, "text must be a str, got int"), (b"bytes", "text must be a str, got bytes"),
])
def test_normalize_rejects_bad_text(text, message):
    with pytest.raises(TextError, match=message):
        normalize_text(text)


@pytest.mark.parametrize("text, expected", [
    ("On 12/03/2024 we met.", "On December third, twenty twenty-four we met."),  # month first in American English
    ("Due 3-7-2025.", "Due March seventh, twenty twenty-five."),
    ("Born 7/4/99 at noon", "Born July fourth, ninety-nine at noon"),
    ("Due 25/12/2024.", "Due December twenty-fifth, twenty twenty-four."),  # a first field over 12 is the day
    ("The log says 2024-03-12.", "The log says March twelfth, twenty twenty-four."),  # ISO 8601
    ("It opened March 12, 2024.", "It opened March twelfth, twenty twenty-four."),
    ("By Sept. 3 or Feb 28th", "By September third or February twenty-eighth"),
    ("on 4 July 1776", "on the fourth of July seventeen seventy-six"),
    ("on the 4th of July", "on the fourth of July"),
    ("13/13/2024 and 3/4", "thirteen/thirteen/twenty twenty-four and three/four"),  # not dates: left as numbers
])
def test_normalize_dates(text, expected):
    assert normalize_text(text) == expected


def test_dates_follow_the_variety_of_english():
    assert normalize_text("12/03/2024", language="en-gb") == "the twelfth of March, twenty twenty-four"
    assert normalize_text("2024-03-12", language="en-gb") == "the twelfth of March, twenty twenty-four"
    assert normalize_text("March 12, 2024", language="en-gb") == "March twelfth, twenty twenty-four"


@pytest.mark.parametrize("text, shown, index", [
    ("\x00abc", "U+0000 (NUL)", 0),
    ("ab\x07c", "U+0007 (BEL)", 2),
    ("Hello\x1b[0m world", "U+001B (ESC)", 5),
    ("one \x7f two", "U+007F (DEL)", 4),
    ("caf\x85e", "U+0085", 3),
])
def test_control_characters_are_refused_naming_the_character_and_where(text, shown, index):
    with pytest.raises(TextError, match=re.escape(f"control character {shown} at index {index}")):
        normalize_text(text)


def test_an_undecodable_byte_is_refused_as_not_utf8():
    garbled = b"caf\xe9".decode("utf-8", errors="surrogateescape")  # what Python makes of a Latin-1 argv
    with pytest.raises(TextError, match=r"U\+DCE9, which stands for the byte 0xe9, at index 3: .*not UTF-8"):
        normalize_text(garbled)


def test_ordinary_whitespace_and_invisible_marks_are_fine():
    assert normalize_text("one\ttwo\r\nthree\x0bfour\x0cfive") == "one two three four five"
    # a soft hyphen, a zero-width space, a word joiner or a byte-order mark inside a word leaves the word whole
    assert normalize_text("\ufeffin\u00adcred\u200bi\u2060ble") == "incredible"


@pytest.mark.parametrize("text, tag", [
    ("<speak>Hello there.</speak>", "<speak>"),
    ('Wait <break time="1s"/> now.', '<break time="1s"/>'),
    ("A <b>bold</b> claim", "<b>"),
    ("<p class='x'>Text</p>", "<p class='x'>"),
    ('<?xml version="1.0"?><speak>Hi</speak>', '<?xml version="1.0"?>'),
])
def test_markup_is_refused_naming_the_tag(text, tag):
    with pytest.raises(TextError, match=re.escape(f"markup {tag!r} at index {text.index(tag)}: ")):
        normalize_text(text)


@pytest.mark.parametrize("text", ["if x < y and y > z", "a<b and c>d", "use -> and <- arrows"])
def test_angle_brackets_that_are_not_tags_are_text(text):
    assert normalize_text(text) == text


@pytest.mark.parametrize("text, language, shown", [
    ("Hello 你好", "en-us", "'你' (U+4F60, CJK), '好' (U+597D, CJK)"),
    ("Привет, мир", "en-gb", "'П' (U+041F, CYRILLIC)"),
    ("Say مرحبا", "en-us", "'م' (U+0645, ARABIC)"),
    ("the word Ελλάδα", "en-us", "'Ε' (U+0395, GREEK)"),
    ("Bonjour こんにちは", "fr-fr", "'こ' (U+3053, HIRAGANA)"),
])
def test_a_script_the_language_cannot_read_is_refused_naming_the_language_option(text, language, shown):
    with pytest.raises(TextError, match=re.escape(shown)) as error:
        normalize_text(text, language=language)
    assert f"language {language!r}" in str(error.value) and "TextConfig(language=" in str(error.value)


@pytest.mark.parametrize("text, language", [
    ("café, naïve, Zoë, façade, Øresund, Łódź, Straße, œuvre", "en-us"),
    ("the α particle and π", "en-us"),  # a lone Greek letter is read by its name ("alpha", "pi")
    ("Привет, мир, and hello", "ru"),  # Latin words in Russian text are read in English
    ("Γειά σου", "el"),
    ("你好", "cmn"),
])
def test_scripts_the_language_reads_are_kept(text, language):
    assert normalize_text(text, language=language) == text


# --- symbol table and ids ------------------------------------------------------------------------------------------


def test_default_table():
    assert len(set(DEFAULT_SYMBOLS)) == len(DEFAULT_SYMBOLS)
    assert all(isinstance(symbol, str) and len(symbol) == 1 for symbol in DEFAULT_SYMBOLS)
    assert set("ˈˌː ") <= set(DEFAULT_SYMBOLS)
    assert set(PUNCTUATION) == set(';:,.!?¡¿—…"«»“”()-\'') and set(PUNCTUATION) <= set(DEFAULT_SYMBOLS)
    assert {"\u0303", "ɚ", "ᵻ", "ʁ", "ç"} <= set(DEFAULT_SYMBOLS)  # French nasal tilde, English, French/German


def test_ids_reserve_pad_and_blank():
    processor = TextProcessor(TextConfig(symbols=list("ab c")))
    assert (processor.pad_id, processor.blank_id) == (PAD_ID, BLANK_ID) == (0, 1)
    assert processor.vocab_size == 4 + 2
    assert processor.encode_phonemes("ab c") == [1, 2, 1, 3, 1, 4, 1, 5, 1]
    symbol_ids = set(TextProcessor().encode_phonemes("".join(DEFAULT_SYMBOLS))) - {BLANK_ID}
    assert symbol_ids == set(range(2, len(DEFAULT_SYMBOLS) + 2))
    assert BLANK_ID not in symbol_ids and PAD_ID not in symbol_ids


def test_intersperse():
    assert intersperse([5, 6, 7], 1) == [1, 5, 1, 6, 1, 7, 1]
    assert intersperse([], 1) == [1]


def test_blank_positions():
    processor = TextProcessor()
    phonemes = "həlˈoʊ wˈɜːld."
    ids = processor.encode_phonemes(phonemes)
    assert len(ids) == 2 * len(phonemes) + 1
    assert all(token == BLANK_ID for token in ids[0::2])
    assert all(token >= 2 for token in ids[1::2])
    no_blank = TextProcessor(TextConfig(add_blank=False)).encode_phonemes(phonemes)
    assert no_blank == ids[1::2]


def test_decode_drops_pad_and_blank():
    processor = TextProcessor(TextConfig(symbols=list("ab c")))
    assert processor.decode([0, 1, 2, 1, 3, 1, 4, 1, 5, 1, 0, 0]) == "ab c"
    assert processor.decode(torch.tensor([1, 3, 1, 2, 1])) == "ba"
    with pytest.raises(TextError, match="id 6 is outside the vocabulary: expected 0 .. 5"):
        processor.decode([2, 6])


def test_unknown_symbols_error_names_them():
    processor = TextProcessor(TextConfig(symbols=list("abc")))
    with pytest.raises(TextError, match=r"unknown symbols 'z' \(U\+007A\), 'ʀ' \(U\+0280\) in phonemes 'azbʀz'"):
        processor.encode_phonemes("azbʀz")


def test_unknown_symbols_drop_mode_warns_and_drops():
    processor = TextProcessor(TextConfig(symbols=list("abc"), unknown_symbols="drop"))
    with pytest.warns(UserWarning, match=r"dropped unknown symbols 'z' \(U\+007A\)"):
        ids = processor.encode_phonemes("azb")
    assert ids == [1, 2, 1, 3, 1]
    with pytest.warns(UserWarning), pytest.raises(TextError, match="left no known symbols"):
        processor.encode_phonemes("zzz")


@pytest.mark.parametrize("phonemes, message", [
    ("", "phonemes are empty"), (["a"], "phonemes must be a str, got list"),
])
def test_encode_phonemes_rejects_bad_input(phonemes, message):
    with pytest.raises(TextError, match=message):
        TextProcessor().encode_phonemes(phonemes)


# --- config --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"symbols": ["a", "b", "a", "c", "b"]}, r"symbols must be unique, but 'a' \(U\+0061\), 'b' \(U\+0062\)"),
    ({"symbols": "abc"}, r"got str \(use list\(...\)"),
    ({"symbols": ["a", "bc"]}, r"single-character strings, got \['bc'\]"),
    ({"unknown_symbols": "ignore"}, r"unknown_symbols must be one of \('error', 'drop'\), got 'ignore'"),
    ({"language": ""}, "language must be an espeak-ng language code"),
])
def test_config_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TextConfig(**kwargs)


def test_config_stores_the_resolved_table():
    assert TextConfig().config.symbols == list(DEFAULT_SYMBOLS)


def test_config_round_trip_preserves_exact_table(tmp_path, monkeypatch):
    symbols = list("zyx ˈ\u0303ɔ")
    config = TextConfig(language="fr-fr", symbols=symbols, add_blank=False, with_stress=False,
                        preserve_punctuation=False, unknown_symbols="drop")
    config.save_config(tmp_path)
    loaded = TextConfig.from_config(TextConfig.load_config(tmp_path))
    assert dict(loaded.config) == dict(config.config)
    assert loaded.config.symbols == symbols

    # A saved default table must not follow later changes of the default.
    TextConfig().save_config(tmp_path / "default")
    monkeypatch.setattr("melinterp.text.config.DEFAULT_SYMBOLS", ("a", "b"))
    assert TextConfig().config.symbols == ["a", "b"]
    reloaded = TextConfig.from_config(TextConfig.load_config(tmp_path / "default"))
    assert reloaded.config.symbols == list(DEFAULT_SYMBOLS)


def test_processor_save_and_load(tmp_path):
    processor = TextProcessor(TextConfig(symbols=list("abc "), add_blank=False))
    processor.save_pretrained(tmp_path / "text_processor")
    assert (tmp_path / "text_processor" / "text_config.json").is_file()
    for loaded in (TextProcessor.from_pretrained(tmp_path / "text_processor"),
                   TextProcessor.from_pretrained(tmp_path, subfolder="text_processor")):
        assert loaded.symbols == ["a", "b", "c", " "]
        assert loaded.vocab_size == 6
        assert loaded.encode_phonemes("ca b") == [4, 2, 5, 3]


def test_processor_needs_a_text_config():
    with pytest.raises(TypeError, match="config must be a TextConfig, got dict"):
        TextProcessor({"language": "en-us"})


@pytest.mark.slow
def test_package_imports_and_encodes_without_phonemizer():
    code = (
        "import sys\n"
        "for name in ('phonemizer', 'espeakng_loader', 'librosa', 'pyworld'): sys.modules[name] = None\n"
        "import melinterp.text as text\n"
        "processor = text.TextProcessor()\n"
        "assert processor.encode_phonemes('a') == [1, processor.symbols.index('a') + 2, 1]\n"
        "try:\n"
        "    processor.phonemize('hi')\n"
        "except ImportError as error:\n"
        "    assert 'precomputed phoneme ids' in str(error), error\n"
        "else:\n"
        "    raise AssertionError('phonemize worked without phonemizer')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# --- phonemisation (espeak-ng via phonemizer) ----------------------------------------------------------------------


@requires_phonemizer
def test_hello_world(processor):
    phonemes = processor.phonemize("Hello world.")
    assert phonemes == "həlˈoʊ wˈɜːld."
    ids = processor.encode("Hello world.")
    assert processor.decode(ids) == phonemes
    assert len(ids) == 2 * len(phonemes) + 1 and all(token == BLANK_ID for token in ids[0::2])


@requires_phonemizer
def test_normalisation_reaches_the_phonemes(processor):
    # Unexpanded, espeak-ng reads "Dr." as "doctor" plus a full stop.
    assert processor.phonemize("Dr. Smith") == processor.phonemize("doctor Smith")
    assert processor.phonemize("$5") == processor.phonemize("five dollars")


@requires_phonemizer
def test_options_stress_and_punctuation():
    plain = TextProcessor(TextConfig(with_stress=False, preserve_punctuation=False))
    assert plain.phonemize("Hello, world!") == "həloʊ wɜːld"


@requires_phonemizer
def test_batch_keeps_texts_aligned_around_decimal_points(processor):
    # phonemizer's own punctuation handling splits "3.5kg, then." into two lines and shifts the rest of a batch.
    texts = ["It weighs 3.5kg, then.", "Hello world.", "Version 1.2, ok."]
    phonemes = processor.phonemize_batch(texts)
    assert len(phonemes) == 3
    assert phonemes[1] == "həlˈoʊ wˈɜːld."
    assert "pɔɪnt fˈaɪv" in phonemes[0] and phonemes[0].endswith("ðˈɛn.")
    assert phonemes == [processor.phonemize(text) for text in texts]


@requires_phonemizer
def test_unknown_symbol_in_real_text_names_symbol_and_text():
    processor = TextProcessor(TextConfig(symbols=table_without("ɜ")))
    with pytest.raises(TextError, match=r"unknown symbols 'ɜ' \(U\+025C\) in phonemes 'həlˈoʊ wˈɜːld\.' of text "
                                        r"'Hello world\.'"):
        processor.encode("Hello world.")
    dropping = TextProcessor(TextConfig(symbols=table_without("ɜ"), unknown_symbols="drop"))
    with pytest.warns(UserWarning, match="'ɜ'"):
        assert dropping.decode(dropping.encode("Hello world.")) == "həlˈoʊ wˈːld."


@requires_phonemizer
@pytest.mark.parametrize("text, message", [
    ("", "text is empty"), ("  \t", "text is empty"), (3.5, "text must be a str, got float"),
    ("?!", r"text '\?!' phonemized to no phonemes"), ("... — !", "phonemized to no phonemes"),
])
def test_phonemize_errors(processor, text, message):
    with pytest.raises(TextError, match=message):
        processor.encode(text)


@requires_phonemizer
def test_batch_errors_name_the_item(processor):
    with pytest.raises(TextError, match=r"text is empty \(item 1 of the batch\)"):
        processor.phonemize_batch(["fine", " "])
    with pytest.raises(TextError, match=r"text must be a str, got NoneType \(item 2 of the batch\)"):
        processor.phonemize_batch(["fine", "also fine", None])
    with pytest.raises(TextError, match="texts must be a list of str, got str"):
        processor.phonemize_batch("one text")


@requires_phonemizer
@pytest.mark.parametrize("language, message", [
    ("xx-yy", "language 'xx-yy' is not supported by espeak-ng"),
    ("fr", "did you mean 'fr-be', 'fr-ch', 'fr-fr'"),
    ("en_us", "did you mean 'en-us'"),
])
def test_unknown_language(language, message):
    with pytest.raises(TextError, match=message):
        TextProcessor(TextConfig(language=language)).phonemize("hello")


@requires_phonemizer
@pytest.mark.parametrize("language, text, expected_phone", [
    ("fr-fr", "Bonjour le monde, comment ça va ? J'ai 3 chats.", "\u0303"),  # nasal vowel of "bonjour"
    ("de", "Ich spreche Deutsch, und die Straße ist 12 km lang.", "ç"),  # "ich"
])
def test_other_languages(language, text, expected_phone):
    processor = TextProcessor(TextConfig(language=language))
    phonemes = processor.phonemize(text)
    assert expected_phone in phonemes
    ids = processor.encode(text)
    assert all(2 <= token < processor.vocab_size for token in ids[1::2])
    assert processor.decode(ids) == phonemes


@requires_phonemizer
def test_phonemizer_warnings_stay_out_of_the_way(caplog, capfd):
    # French text with English words makes espeak-ng switch language, which phonemizer reports as a warning.
    processor = TextProcessor(TextConfig(language="fr-fr"))
    with caplog.at_level(logging.DEBUG, logger="melinterp.text"), warnings.catch_warnings():
        warnings.simplefilter("error")
        phonemes = processor.phonemize("J'adore le football et le weekend.")
    assert "(en)" not in phonemes and "(fr)" not in phonemes  # language-switch flags removed
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert any("language switch" in record.getMessage() for record in caplog.records)
    assert capfd.readouterr().err == ""


@requires_phonemizer
def test_backends_are_cached():
    assert espeak_backend("en-us", True) is espeak_backend("en-us", True)
    assert espeak_backend("en-us", False) is not espeak_backend("en-us", True)


def english_sentences(count: int, seed: int = 0) -> list[str]:
    """Varied English sentences built from words covering the English vowels and consonants, numbers and marks."""
    rng = random.Random(seed)
    words = (
        "kit dress trap lot strut foot bath cloth nurse fleece face palm thought goat goose price choice mouth near "
        "square start north force cure happy letter comma button bottle little water better rhythm garden mountain "
        "kitten often hour fire lawyer judge church measure vision thing think this sing yes wet whale hat zoo "
        "shoe treasure azure beige genre Beijing Bach loch Kafka Mozart tsar café naïve résumé can't wouldn't "
        "it's we'll they've o'clock well-known mother-in-law quickly usually the a an of to and I you she we they"
    ).split()
    amounts = ["3", "17", "-4", "2.75", "1,250", "1999", "2024", "1st", "22nd", "$5", "$3.50", "£2", "50%", "7:30"]
    abbreviations = ["Dr.", "Mr.", "Mrs.", "Prof.", "St."]
    marks = [".", "!", "?", ",", ";", ":", "…"]
    sentences = []
    for _ in range(count):
        parts = rng.sample(words, rng.randint(3, 9))
        if rng.random() < 0.5:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(amounts))
        if rng.random() < 0.2:
            parts.insert(0, f"{rng.choice(abbreviations)} {rng.choice(['Smith', 'Jones', 'Lee'])}")
        if rng.random() < 0.3:
            cut = rng.randrange(1, len(parts))
            parts[cut - 1] += rng.choice([",", ";", ":", " —"])
        sentence = " ".join(parts)
        if rng.random() < 0.15:
            sentence = f'"{sentence}"' if rng.random() < 0.5 else f"({sentence})"
        sentences.append(sentence[0].upper() + sentence[1:] + rng.choice(marks))
    return sentences


@requires_phonemizer
def test_default_table_covers_english(processor):
    sentences = english_sentences(300)
    assert len(set(sentences)) > 290
    phonemes = processor.phonemize_batch(sentences)
    covered = set()
    for phoneme_string in phonemes:
        processor.encode_phonemes(phoneme_string)  # raises on any symbol outside the table
        covered.update(phoneme_string)
    assert {"ɚ", "ʔ", "\u0329", "ʒ", "θ", "ð", "ŋ", "x"} <= covered  # the generator reaches the rarer phones


@requires_phonemizer
def test_phonemize_batch_of_200_sentences(processor):
    sentences = english_sentences(200, seed=1)
    phonemes = processor.phonemize_batch(sentences)
    assert len(phonemes) == 200 and all(phonemes)
