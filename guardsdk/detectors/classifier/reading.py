"""Read a text as an LLM would before the classifier scores it (pure functions).

The encoder reads English words in plain Latin letters; a model behind the guard reads far more. So each text is
also read (a) with invisible characters removed, confusable letters mapped to their Latin skeleton (Unicode UTS #39
data from ``confusable-homoglyphs``, after NFKC) and leetspeak words spelled out; (b) with encoded payloads decoded
(base64, hex, URL-encoding; ROT13 of the whole text where that reads more like English); (c) a long run-on sentence
in clause-sized pieces, so benign clauses cannot dilute a request. :func:`readings` and :func:`clause_pieces` are
the extra texts the detector scores beside the text (highest score wins), both capped per text.

What it cannot read at all is said by :func:`unreadable`: a text in another language or script than English (CLD2
via ``pycld2``, and a script share rule for text CLD2 leaves unknown) gets a reason starting ``unreadable:`` and its
tasks no label, so a guard alone fails closed on it and a cascade escalates it.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from pathlib import Path

from guardsdk.detectors.classifier.decoding import COMMON, _common_words, decode_shifts, decoded_payloads, shifted_parts

#: At most this many payload and shift readings (besides the skeleton) are scored; a text with more is undecided.
MAX_READINGS = 4
#: At most this many clause pieces (64, not 40: a request among 100 padding sentences was read joined to three).
MAX_CLAUSES = 64
#: A reading is cut to this many characters (a few encoder windows), a clause piece (joined neighbours, beyond
#: ``MAX_CLAUSES``) to ~150 tokens of English; the detector reads a piece over one window in windows.
MAX_READING_CHARS = 4000
#: How deep payloads inside payloads are decoded (hex of ROT13: 2; base64 of base64 of ROT13: 3).
DECODE_DEPTH = 3
MAX_CLAUSE_CHARS = 600
#: A sentence of at least this many words is also read in clauses; a clause has at least ``MIN_CLAUSE_WORDS``
#: words (shorter ones join the next) and a clause over ``CLAUSE_WINDOW`` words is read in windows of that many.
CLAUSE_SENTENCE_WORDS = 8
MIN_CLAUSE_WORDS = 3
CLAUSE_WINDOW = 16
#: A text is unreadable when CLD2 finds a language other than English in at least this share of it, or when at
#: least this share of its letters are outside the Latin script.
FOREIGN_SHARE = 0.25

#: Where a text is cut into sentences scored on their own, and the fewest words a scored sentence has.
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
MIN_SENTENCE_WORDS = 3
SENTENCE = re.compile(r"[^\n.!?]+[.!?]*")
CLAUSE_BREAK = re.compile(r"[,;:()\u2013\u2014]+|\s-\s|\b(?:and then|and|then|but|or|so|while|after|before)\b", re.I)
WORD = re.compile(r"\S+")
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a",
                      "$": "s", "|": "l"})  # fmt: skip
LEET_WORD = re.compile(r"(?<![\w@$|])(?=[\w@$|]*[A-Za-z])(?=[\w@$|]*[0134578@$|])[\w@$|]{2,15}(?![\w@$|])")
#: A short word of look-alike digits alone (``4`` for "a", ``15`` for "is"): spelled out only in a text with
#: at least :data:`LEET_TEXT_WORDS` leetspeak words, where it is one more of them rather than a number.
LEET_DIGITS = re.compile(r"(?<![\w@$|.,])[0134579]{1,4}(?![\w@$|]|[.,]\d)")
LEET_TEXT_WORDS = 2
#: Common English words that are not words of the languages CLD2 confuses English with most (``a``, ``in``, ``do``,
#: ``me``, ``so`` are): a text of which at least a quarter are these is English with foreign words, not foreign.
ENGLISH = frozenset(re.findall(r"\w+", "the to of and is you how what can my for with this that are it your please"))
#: A text of at most this many words (CJK: two characters a word), two and a third of them common English words, is
#: English (a foreign name or dish in it).
SHORT_WORDS = 8
#: A Caesar shift or reversal of a text makes it readable only when at least this share of its words are common English
#: words (ROT13 English: about half; a foreign request reversed after an appended "eht ot": two words of a dozen).
SHIFTED_ENGLISH = 1 / 3
SHORT_ENGLISH = frozenset(
    re.findall(
        r"\w+",
        "will be have has we they he she his her our their from about would should "
        "could which who when where why there here not all any some just like get",
    )
)
#: A sentence is judged clause by clause (CLD2 reads a mixed sentence as its majority language).
CLAUSE_PUNCTUATION = re.compile(r"[,;:()\u2013\u2014]+")
#: Left out before the language is judged: URLs and e-mail addresses, and a lone letter of another script.
URLS = re.compile(r"(?:https?://|www\.)\S+|\S+@\S+\.\w+")
LONE_LETTER = re.compile(r"(?<![^\W\d_])[^\W\d_a-zA-Z](?![^\W\d_])")
CJK_SCRIPTS = frozenset({"CJK", "HIRAGANA", "KATAKANA", "HANGUL"})
#: Languages CLD2 names for short English (``Who wrote Hamlet?`` is Klingon to it): named alone for a clause that holds
#: a common English word, the clause is judged again with English as the page's language, and is English only if CLD2
#: then says so. Real languages (Latin, Javanese) are not asked again: a short Latin clause often reads English then.
ENGLISH_LOOKALIKES = frozenset({"tlh", "sco"})


def sentence_bounds(text: str) -> list[tuple[int, int]]:
    """The character ranges of ``text``'s sentences (and lines) with at least :data:`MIN_SENTENCE_WORDS`
    words; none when the text is a single sentence."""
    bounds, start = [], 0
    for end in SENTENCE_END.finditer(text):
        bounds.append((start, end.start()))
        start = end.end()
    bounds.append((start, len(text)))
    bounds = [(a, b) for a, b in bounds if len(text[a:b].split()) >= MIN_SENTENCE_WORDS]
    return bounds if len(bounds) >= 2 else []


def visible(text: str) -> str:
    """``text`` without invisible characters: format characters (zero-width space and joiners, bidi controls, soft
    hyphen, tags) and variation selectors."""
    return "".join(c for c in text if unicodedata.category(c) != "Cf" and not 0xFE00 <= ord(c) <= 0xFE0F)


@functools.cache
def _confusables() -> dict[int, str]:
    """Each non-ASCII character that UTS #39 lists as confusable with an ASCII letter, to that letter."""
    import confusable_homoglyphs

    data = json.loads((Path(confusable_homoglyphs.__file__).parent / "confusables.json").read_text("utf-8"))
    table = {}
    for char, glyphs in data.items():
        latin = [g["c"] for g in glyphs if len(g["c"]) == 1 and g["c"].isascii() and g["c"].isalpha()]
        if len(char) == 1 and not char.isascii() and latin:
            table[ord(char)] = latin[0]
    return table


def skeleton(text: str) -> str:
    """``text`` in NFKC with, in each word that holds an ASCII letter or is wholly made of look-alikes, every
    character confusable with an ASCII letter replaced by it (Cyrillic ``о`` for ``o``): the word as it is read."""
    table = _confusables()
    text = unicodedata.normalize("NFKC", text)

    def word(match: re.Match[str]) -> str:
        w = match.group()
        if w.isascii():
            return w
        letters = [c for c in w if c.isalpha()]
        if any(c.isascii() for c in letters) or all(c.isascii() or ord(c) in table for c in letters):
            return w.translate(table)
        return w

    return WORD.sub(word, text)


def unleet(text: str) -> str:
    """``text`` with leetspeak spelled out in words that mix letters with look-alike digits or signs
    (``b0mb`` -> ``bomb``, ``3xpl0s1v3s`` -> ``explosives``), and in a text with :data:`LEET_TEXT_WORDS` such words
    its short all-digit words too (``h0w 70 m4k3`` -> ``how to make``); plain words stay, and numbers elsewhere."""
    spelled, count = LEET_WORD.subn(lambda m: m.group().replace("11", "ll").translate(LEET), text)
    return LEET_DIGITS.sub(lambda m: m.group().translate(LEET), spelled) if count >= LEET_TEXT_WORDS else spelled


def readings(text: str, limit: int = MAX_READINGS) -> list[str]:
    """:func:`all_readings`: the skeleton and at most ``limit`` more (a text with more is undecided: none unread)."""
    return all_readings(text)[: limit + 1]


def _deeper(text: str, levels: int) -> bool:
    """Whether ``text`` holds a payload (or shift) nested ``levels`` deep."""
    return levels == 0 or any(_deeper(payload, levels - 1) for payload in _decoded_once(text))


@functools.lru_cache(maxsize=1024)  # the readings, the layer count and the language check all ask, level by level
def _decoded_once(text: str) -> tuple[str, ...]:
    """``text``'s decoded payloads and English-reading shifts, one level down."""
    return (*decoded_payloads(text), *decode_shifts(text), *shifted_parts(text))


def all_readings(text: str) -> list[str]:
    """Every other way ``text`` reads, each at most :data:`MAX_READING_CHARS`, none equal to the text: its skeleton
    (invisible characters removed, look-alikes and leetspeak spelled out), its decoded payloads and the Caesar shift or
    reversal of it or of its sentences and clauses that reads as English, each read the same way, and theirs in turn
    (:data:`DECODE_DEPTH` levels: ROT13 inside hex, base64 inside base64)."""
    shown = visible(text)
    found = [unleet(skeleton(shown)), *(unleet(skeleton(visible(p))) for p in _payloads(shown, DECODE_DEPTH))]
    return [r[:MAX_READING_CHARS] for r in dict.fromkeys(found) if r.strip() and r != text]


def _payloads(text: str, depth: int) -> tuple[str, ...]:
    """``text``'s decoded payloads and English-reading shifts, and (``depth`` > 1) theirs."""
    found: list[str] = []
    for payload in _decoded_once(text):
        found += [payload, *(_payloads(payload, depth - 1) if depth > 1 else ())]
    return tuple(found)


def _clauses(sentence: str) -> list[str]:
    """A sentence's clauses, each at least :data:`MIN_CLAUSE_WORDS` words (shorter ones join the next), one over
    :data:`CLAUSE_WINDOW` words in windows of that many overlapping by half."""
    parts, pending = [], ""
    for part in CLAUSE_BREAK.split(sentence):
        pending = f"{pending} {part}".strip() if pending else part.strip()
        if len(pending.split()) >= MIN_CLAUSE_WORDS:
            parts.append(pending)
            pending = ""
    if pending and parts:
        parts[-1] = f"{parts[-1]} {pending}"
    clauses = []
    for part in parts:
        words, step = part.split(), CLAUSE_WINDOW // 2
        if len(words) <= CLAUSE_WINDOW:
            clauses.append(part)
        else:
            clauses += [" ".join(words[i : i + CLAUSE_WINDOW]) for i in range(0, len(words) - step, step)]
    return clauses


def clause_pieces(text: str, limit: int = MAX_CLAUSES, every_sentence: bool = False) -> list[str]:
    """The clause-sized pieces of ``text``'s sentences of at least :data:`CLAUSE_SENTENCE_WORDS` words (none for a
    sentence that is one clause) and, with ``every_sentence``, each other sentence of :data:`MIN_SENTENCE_WORDS`
    words or more (a long text's sentences are otherwise read in their window's context, where a hundred benign
    ones dilute one request); each at most :data:`MAX_CLAUSE_CHARS`; beyond ``limit`` neighbours are joined (no
    piece is left out)."""
    pieces: list[str] = []
    for sentence in SENTENCE.findall(text):
        words = len(sentence.split())
        if words >= CLAUSE_SENTENCE_WORDS and len(clauses := _clauses(sentence)) >= 2:
            pieces += clauses
        elif every_sentence and words >= MIN_SENTENCE_WORDS:
            pieces.append(sentence.strip())
    while len(pieces) > limit:
        pieces = [" ".join(pieces[i : i + 2]) for i in range(0, len(pieces), 2)]
    return [piece[:MAX_CLAUSE_CHARS] for piece in pieces]


def _script(char: str) -> str:
    return unicodedata.name(char, "UNKNOWN").split(" ")[0]


def _word_count(text: str) -> float:
    """``text``'s words: whitespace-separated, or for CJK (no spaces) two characters a word, whichever is more."""
    return max(len(text.split()), sum(_script(c) in CJK_SCRIPTS for c in text) / 2)


def _foreign_words(sentence: str) -> tuple[float, str]:
    """How many of a sentence's words are in a language or script the encoder cannot read (CLD2's share of it, or
    its letters in another script than Latin), and which; CJK counts a word per two characters."""
    import pycld2

    words = _word_count(sentence)
    clean = "".join(c if c.isprintable() or c in "\n\t" else " " for c in sentence)
    clean = clean.encode("utf-8", "replace").decode("utf-8")
    try:
        _, _, details = pycld2.detect(clean)
        lookalike = {code for _, code, _, _ in details} <= ENGLISH_LOOKALIKES | {"un"}
        if lookalike and _common_words(clean, ENGLISH | SHORT_ENGLISH) > 0:
            _, _, again = pycld2.detect(clean, hintLanguageHTTPHeaders="en")
            details = again if again[0][1] == "en" else details
    except pycld2.error:
        details = ()
    shares = [(share, code) for _, code, share, _ in details if code not in ("en", "un") and share >= 50]
    if shares:
        share, code = max(shares)
        return words * share / 100, f"language {code}"
    letters = [c for c in sentence if c.isalpha()]
    other = [_script(c) for c in letters if _script(c) != "LATIN"]
    if letters and len(other) >= len(letters) / 2:
        return words * len(other) / len(letters), f"script {max(set(other), key=other.count).lower()}"
    return 0.0, ""


def unreadable(text: str, decoded: bool = True) -> str | None:
    """Why the English-only encoder cannot read ``text`` (``"unreadable: language de"``), or None when it can.

    The text is read as :func:`readings` reads it, URLs and e-mail addresses and lone letters of other scripts (a
    variable ``α``) left out, and judged clause by clause: it is unreadable when at least :data:`FOREIGN_SHARE` of
    its words are in a language CLD2 names other than English, or in another script (a sentence of English words
    padded onto foreign ones does not hide them), and sentence by sentence (commas cannot cut a foreign sentence into
    words too short for CLD2). A short text (at most :data:`SHORT_WORDS` words, a third of them and at least two common
    English words) is English with a foreign name in it; a shift or reversal of it that is English (a third of its words
    common English words) makes it readable."""
    payloads = _payloads(visible(text), DECODE_DEPTH) if decoded else ()
    if len(set(payloads)) > MAX_READINGS:  # more than are scored: none may be left unread
        return f"unreadable: more than {MAX_READINGS} readings (encoded parts)"
    if decoded and _deeper(visible(text), DECODE_DEPTH + 1):  # a layer below those read
        return f"unreadable: more than {DECODE_DEPTH} layers of encoding"
    why = _unreadable_as_written(text)
    for payload in payloads if why is None else ():
        if (found := unreadable(payload, decoded=False)) is not None:  # a request encoded in another language
            return f"{found} (decoded)"
    return why


def _unreadable_as_written(text: str) -> str | None:
    """:func:`unreadable` of the text itself (and its whole shift or reversal), not of its payloads."""
    plain = LONE_LETTER.sub(" ", URLS.sub(" ", unleet(skeleton(visible(text)))))
    reason = None
    for candidate in (plain, *decode_shifts(plain)):
        words = _word_count(candidate)
        common = _common_words(candidate, COMMON | ENGLISH | SHORT_ENGLISH)
        if candidate is not plain and common < SHIFTED_ENGLISH * words:
            continue  # a shift or reversal vouches for the text only when it reads as English, not as noise
        if words <= SHORT_WORDS and common >= max(2, SHIFTED_ENGLISH * words):
            return None
        sentences = [sentence for sentence in SENTENCE.findall(candidate) if sentence.strip()]
        chunks = [c for sentence in sentences for c in CLAUSE_PUNCTUATION.split(sentence) if c.strip()]
        # clause by clause (English padding cannot hide a foreign clause) and sentence by sentence (nor can commas
        # cut a foreign sentence into words too short for CLD2): the more foreign of the two counts
        counted = max([_foreign_words(chunk) for chunk in chunks], [_foreign_words(s) for s in sentences],
                      key=lambda found: sum(n for n, _ in found))  # fmt: skip
        foreign = sum(n for n, _ in counted)
        total = sum(max(len(chunk.split()), 1) for chunk in chunks) or 1
        if foreign < FOREIGN_SHARE * max(total, foreign):
            return None
        reason = reason or max(counted)[1]
    return f"unreadable: {reason}"


__all__ = ["MIN_SENTENCE_WORDS", "SENTENCE_END", "all_readings", "clause_pieces", "readings", "sentence_bounds",
           "skeleton", "unleet", "unreadable", "visible"]  # fmt: skip
