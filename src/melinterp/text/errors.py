"""The text front end's error type and the input check every entry point shares."""

from __future__ import annotations

import re


class TextError(ValueError):
    """Text, phonemes or ids that the front end cannot turn into model input; the message says why."""


# Control characters other than the whitespace ones (tab, newline, vertical tab, form feed, carriage return), and
# lone surrogates (what Python makes of bytes that are not UTF-8, e.g. in a command-line argument)
_UNSPEAKABLE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_C0_NAMES = ("NUL SOH STX ETX EOT ENQ ACK BEL BS HT LF VT FF CR SO SI DLE DC1 DC2 DC3 DC4 NAK SYN ETB CAN EM SUB ESC "
             "FS GS RS US").split()

# An XML/HTML/SSML tag: "<b>", "</speak>", '<break time="1s"/>'. Attributes must have values, so that text such as
# "a<b and c>d" is not taken for a tag.
_TAG = r"""</?[A-Za-z][\w:.-]*(?:\s+[\w:.-]+\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'<>=/]+))*\s*/?>"""
_MARKUP = re.compile(r"<\?xml\b[^>]*>|<!--.*?-->|" + _TAG, re.DOTALL)


def check_text(text: object, where: str = "") -> str:
    """Return ``text`` if it is a non-blank ``str`` of plain text, else raise :class:`TextError`.

    Plain text holds no control character but tab, newline, vertical tab, form feed and carriage return (espeak-ng
    stops reading at a NUL, and drops the rest of the word), and no markup: a tag such as ``<speak>``,
    ``<break time="1s"/>`` or ``<b>`` is refused rather than read aloud or silently dropped, since neither SSML nor
    HTML is interpreted. The message names the character or tag and its index in ``text``.

    ``where`` (e.g. ``" (item 3 of the batch)"``) is appended to the subject so a batch error points at its item.
    """
    if not isinstance(text, str):
        raise TextError(f"text must be a str, got {type(text).__name__}{where}: {text!r:.80}")
    if not text.strip():
        raise TextError(f"text is empty{where} (got {text!r}): give at least one word to speak")
    unspeakable = _UNSPEAKABLE.search(text)
    if unspeakable:
        what, advice = _describe_unspeakable(unspeakable[0])
        raise TextError(f"text{where} holds {what} at index {unspeakable.start()}: {advice}")
    markup = _MARKUP.search(text)
    if markup:
        raise TextError(f"text{where} holds markup {markup[0]!r:.80} at index {markup.start()}: melinterp speaks plain "
                        "text and reads neither SSML nor HTML; remove the tags (a full stop or a comma makes a pause)")
    return text


def _describe_unspeakable(char: str) -> tuple[str, str]:
    """(what ``char`` is, what to do): ("the control character U+0000 (NUL)", "... remove it")."""
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # Python's surrogateescape stands for the byte code - 0xDC00
        return (f"U+{code:04X}, which stands for the byte 0x{code - 0xDC00:02x},",
                "that byte is not UTF-8: give UTF-8 text")
    if 0xD800 <= code <= 0xDFFF:
        return f"U+{code:04X}, a lone surrogate,", "that is no character: give UTF-8 text"
    name = _C0_NAMES[code] if code < 0x20 else "DEL" if code == 0x7F else None
    return (f"the control character U+{code:04X}" + (f" ({name})" if name else ""),
            "expected plain text (tabs and newlines are fine); remove it")
