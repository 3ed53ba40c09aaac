"""Text normalisation and tokenisation for the catalog's Japanese full-text search.

``normalise`` folds the variants people type into one form, and is applied identically to what is
indexed and to what is searched:

* lone surrogates and control characters become spaces (user input may hold anything);
* NFKC: full-width ASCII to ASCII (ＡＥＤ → AED), half-width katakana to full width
  (ｶﾝｺｳ → カンコウ), compatibility ideographs and ligatures (㍿ → 株式会社), U+3000 to a space;
* lowercase;
* katakana to hiragana (``jaconv.kata2hira``): ゴミ, ごみ and ｺﾞﾐ all become ごみ;
* small kana to their full-size forms (ぁ→あ, っ→つ, ゃ→や, ヶ→け, …), so that official names
  written with full-size kana (キヤノン, 霞ケ関) match the usual spelling (キャノン, 霞ヶ関);
* the long vowel mark is *kept*, because it distinguishes words (ビル / ビール), but the dashes
  that are typed in its place after a kana (ASCII '-', U+2010–U+2015, U+2212 and, through NFKC,
  half-width ｰ and full-width －) become ー, so コ－ヒ－ matches コーヒー;
* runs of whitespace collapse to one space; leading and trailing space is dropped.

Why character bigrams rather than words: Japanese has no spaces, and the words people search the
catalog for are very often two characters long: 観光, 防災, 子育(て), 避難, 医療, 交通. SQLite's
``trigram`` tokenizer cannot match a query shorter than three characters at all. A morphological
analyser (MeCab, Sudachi, Kuromoji) needs a dictionary download of tens of megabytes, and it
mis-segments exactly the words a regional catalog is full of: place names, facility names and
new compounds (丹波篠山市, 子育て支援センター), so a document and a query can be segmented
differently and fail to match. Indexing overlapping character bigrams of every run of CJK/kana
characters is the standard dictionary-free approach for CJK search (Lucene's CJKAnalyzer /
CJKBigramFilter, Elasticsearch's ``cjk`` analyzer): any query of two or more characters becomes
the AND of its bigrams, which matches every document containing the query string, with a small
rate of false positives where the bigrams occur apart. ASCII (and other non-CJK) words are kept
whole, as a space-delimited language would be.
"""

from __future__ import annotations

import re
import unicodedata

import jaconv

__all__ = ["bigrams", "index_tokens", "normalise", "query_terms"]

# Lone surrogates (Python strings may hold them, SQLite cannot), C0/C1 controls and DEL.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

_SMALL_KANA = str.maketrans({
    "ぁ": "あ", "ぃ": "い", "ぅ": "う", "ぇ": "え", "ぉ": "お", "っ": "つ", "ゃ": "や", "ゅ": "ゆ",
    "ょ": "よ", "ゎ": "わ", "ゕ": "か", "ゖ": "け",
    # katakana that have no hiragana form, and the katakana phonetic extensions (small)
    "ヵ": "か", "ヶ": "け", "ㇰ": "く", "ㇱ": "し", "ㇲ": "す", "ㇳ": "と", "ㇴ": "ぬ", "ㇵ": "は",
    "ㇶ": "ひ", "ㇷ": "ふ", "ㇸ": "へ", "ㇹ": "ほ", "ㇺ": "む", "ㇻ": "ら", "ㇼ": "り", "ㇽ": "る",
    "ㇾ": "れ", "ㇿ": "ろ",
})

# Characters that form CJK runs (tokenised as bigrams). Only letters: the middle dot ・, the
# combining/spacing voicing marks and ideographic punctuation are separators.
_CJK_CLASS = (
    "\u3005-\u3007"          # 々 〆 〇
    "\u3041-\u3096"          # hiragana
    "\u309d-\u309f"          # ゝ ゞ ゟ
    "\u30a1-\u30fa"          # katakana (normally folded to hiragana already)
    "\u30fc-\u30ff"          # ー ヽ ヾ ヿ
    "\u31f0-\u31ff"          # katakana phonetic extensions
    "\u3400-\u4dbf"          # CJK extension A
    "\u4e00-\u9fff"          # CJK unified ideographs
    "\uac00-\ud7a3"          # hangul syllables
    "\uf900-\ufaff"          # CJK compatibility ideographs
    "\U0001b000-\U0001b16f"  # kana supplement / extended-A
    "\U00020000-\U0003134f"  # CJK extensions B–G and compatibility supplement
)
_RUN = re.compile(f"(?P<cjk>[{_CJK_CLASS}]+)|(?P<word>[^\\W_{_CJK_CLASS}]+)")

_KANA = "\u3041-\u309f\u30a1-\u30fc"
_DASH_AFTER_KANA = re.compile(f"(?<=[{_KANA}])[-\u2010-\u2015\u2212]+")


def normalise(text: str) -> str:
    """The search form of ``text`` (see the module docstring). Never raises on a ``str``."""
    text = _UNSAFE.sub(" ", text)
    text = unicodedata.normalize("NFKC", text).lower()
    text = jaconv.kata2hira(text).translate(_SMALL_KANA)
    text = _DASH_AFTER_KANA.sub(lambda m: "ー" * len(m.group()), text)
    return " ".join(text.split())


def _runs(text: str) -> list[tuple[bool, str]]:
    """(is_cjk, run) for each CJK/kana run and each other alphanumeric word of normalised text."""
    return [(m.lastgroup == "cjk", m.group()) for m in _RUN.finditer(text)]


def bigrams(text: str) -> list[str]:
    """Tokens of ``text`` (normalised first): the overlapping character bigrams of each CJK/kana
    run (a one-character run yields that character) and each other alphanumeric word whole.
    In document order, duplicates kept."""
    out: list[str] = []
    for cjk, run in _runs(normalise(text)):
        if cjk and len(run) > 1:
            out.extend(run[i:i + 2] for i in range(len(run) - 1))
        else:
            out.append(run)
    return out


def index_tokens(text: str) -> list[str]:
    """What is indexed for ``text``: ``bigrams(text)`` plus, for each CJK run of two or more
    characters, its last character as a unigram. Every character of a run is then the first
    character of some token, so a one-character query ``X`` is answered exactly by the prefix
    query ``X*`` (tokens starting with X) without indexing every unigram."""
    out: list[str] = []
    for cjk, run in _runs(normalise(text)):
        if cjk and len(run) > 1:
            out.extend(run[i:i + 2] for i in range(len(run) - 1))
            out.append(run[-1])
        else:
            out.append(run)
    return out


def query_terms(text: str) -> list[tuple[str, bool]]:
    """(token, is_prefix) for a search query, duplicates removed, in query order. A one-character
    CJK run becomes a prefix term (see ``index_tokens``); everything else is an exact token."""
    seen: set[str] = set()
    out: list[tuple[str, bool]] = []
    for cjk, run in _runs(normalise(text)):
        if cjk and len(run) == 1:
            terms = [(run, True)]
        elif cjk:
            terms = [(run[i:i + 2], False) for i in range(len(run) - 1)]
        else:
            terms = [(run, False)]
        for term in terms:
            key = ("*" if term[1] else "=") + term[0]
            if key not in seen:
                seen.add(key)
                out.append(term)
    return out
