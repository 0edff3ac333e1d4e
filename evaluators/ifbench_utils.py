"""Text measures the IFBench checkers share, as the published IFBench reference computes them.

Sentences here are the reference's regular-expression splitter (IFEval's
``instructions_util.split_into_sentences``), not Punkt: it is what produced IFBench's
published verdicts. Word tokens are ``nltk.word_tokenize`` as NLTK 3.9 (the reference's)
computes it: Punkt English sentences, then Treebank tokens, both ported. Words are ``\\w+``
runs (Python's ``re``, as NLTK 3.9's RegexpTokenizer), and the stopwords are NLTK's English
list, shipped with this package (``nltk_english_stopwords.json``); nothing is downloaded.
"""

from __future__ import annotations

import functools
import json
import re
import string
import unicodedata
from importlib import resources

import emoji

from canarytrace.evaluators import instruction_utils, nltk_punkt, treebank

PUNCTUATION = string.punctuation
_NO_PUNCTUATION = str.maketrans("", "", PUNCTUATION)

count_words = instruction_utils.count_words


@functools.lru_cache(maxsize=1024)
def word_tokens(text: str) -> tuple[str, ...]:
    """``nltk.word_tokenize(text)`` as NLTK 3.9 returns it.

    Cached: several checkers, and the strict and loose readings, tokenize the same text.
    """
    return tuple(token for sentence in nltk_punkt.split_sentences(text)
                 for token in treebank.tokenize(sentence))

# --- the reference's sentence splitter --------------------------------------------

_ALPHABETS = "([A-Za-z])"
_PREFIXES = "(Mr|St|Mrs|Ms|Dr)[.]"
_SUFFIXES = "(Inc|Ltd|Jr|Sr|Co)"
_STARTERS = (r"(Mr|Mrs|Ms|Dr|Prof|Capt|Cpt|Lt|He\s|She\s|It\s|They\s|Their\s|Our\s|We\s|But\s"
             r"|However\s|That\s|This\s|Wherever)")
_ACRONYMS = "([A-Z][.][A-Z][.](?:[A-Z][.])?)"
_WEBSITES = "[.](com|net|org|io|gov|edu|me)"
_DIGITS = "([0-9])"
_MULTIPLE_DOTS = r"\.{2,}"


def _protect_periods(text: str) -> str:
    """Mark the periods that do not end a sentence (titles, sites, decimals, initials) <prd>."""
    text = re.sub(_PREFIXES, "\\1<prd>", text)
    text = re.sub(_WEBSITES, "<prd>\\1", text)
    text = re.sub(_DIGITS + "[.]" + _DIGITS, "\\1<prd>\\2", text)
    text = re.sub(_MULTIPLE_DOTS, lambda match: "<prd>" * len(match.group(0)) + "<stop>", text)
    if "Ph.D" in text:
        text = text.replace("Ph.D.", "Ph<prd>D<prd>")
    text = re.sub(r"\s" + _ALPHABETS + "[.] ", " \\1<prd> ", text)
    text = re.sub(_ACRONYMS + " " + _STARTERS, "\\1<stop> \\2", text)
    text = re.sub(_ALPHABETS + "[.]" + _ALPHABETS + "[.]" + _ALPHABETS + "[.]",
                  "\\1<prd>\\2<prd>\\3<prd>", text)
    text = re.sub(_ALPHABETS + "[.]" + _ALPHABETS + "[.]", "\\1<prd>\\2<prd>", text)
    text = re.sub(" " + _SUFFIXES + "[.] " + _STARTERS, " \\1<stop> \\2", text)
    text = re.sub(" " + _SUFFIXES + "[.]", " \\1<prd>", text)
    return re.sub(" " + _ALPHABETS + "[.]", " \\1<prd>", text)


@functools.lru_cache(maxsize=1024)
def split_sentences(text: str) -> tuple[str, ...]:
    """The reference's sentences: stripped, split after . ? ! (quotes moved inside first)."""
    text = _protect_periods((" " + text + "  ").replace("\n", " "))
    text = text.replace(".\u201d", "\u201d.")
    for mark in ".!?":
        text = text.replace(mark + '"', '"' + mark)
    for mark in ".?!":
        text = text.replace(mark, mark + "<stop>")
    sentences = [part.strip() for part in text.replace("<prd>", ".").split("<stop>")]
    if sentences and not sentences[-1]:
        sentences = sentences[:-1]
    return tuple(sentences)


# --- small string helpers, each the reference's own idiom ---------------------------

def strip_punctuation(text: str) -> str:
    """``text.strip(string.punctuation + ' ')``."""
    return text.strip(PUNCTUATION + " ")


def remove_punctuation(text: str) -> str:
    """Every ASCII punctuation character deleted."""
    return text.translate(_NO_PUNCTUATION)


def ascii_fold(text: str) -> str:
    """NFKD, then only the ASCII characters kept ('São Tomé' -> 'Sao Tome')."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def char_trigrams(text: str) -> set[tuple[str, str, str]]:
    """The distinct character trigrams of ``text`` (``set(nltk.ngrams(text, 3))``)."""
    return set(zip(text, text[1:], text[2:], strict=False))


def is_emoji(char: str) -> bool:
    return emoji.is_emoji(char)


@functools.cache
def english_stopwords() -> frozenset[str]:
    """NLTK's English stopword list (``nltk.corpus.stopwords.words('english')``)."""
    resource = resources.files("canarytrace.evaluators") / "nltk_english_stopwords.json"
    return frozenset(json.loads(resource.read_text(encoding="utf-8"))["words"])


def count_stopwords(text: str) -> int:
    """How many ``\\w+`` words of ``text`` are English stopwords (case-insensitive)."""
    stopwords = english_stopwords()
    return sum(1 for word in re.findall(r"\w+", text) if word.lower() in stopwords)
