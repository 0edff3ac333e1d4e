"""IFBench's word-game and sentence constraints (``words:*``, ``sentence:*``): a class each.

Each reproduces the published IFBench reference's ``check_following`` (see
``ifbench_instructions``); where that version raised on an empty piece of text, the
verdict is the one its later fix gives (False). ``words:start_verb`` is not here: it needs
NLTK's averaged-perceptron POS tagger, which no offline package carries.
"""

from __future__ import annotations

import string
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

import syllapy

from canarytrace.evaluators import ifbench_utils as text
from canarytrace.evaluators.instruction_base import Instruction, non_empty_text, whole_number

VOWELS = frozenset("aeiou")
CONSONANTS = frozenset("bcdfghjklmnpqrstvwxyz")
PRIMES = frozenset((2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71,
                    73, 79, 83, 89, 97))
_EDGE = text.PUNCTUATION + " "


@dataclass(frozen=True)
class AlphabetChain(Instruction):
    """Each word starts with the letter after the previous word's, Z looping back to A."""

    id = "words:alphabet"

    def check(self, response: str) -> bool:
        words = text.strip_punctuation(text.remove_punctuation(response)).split()
        if not words:
            return False
        alphabet = string.ascii_lowercase
        letter = words[0][0].lower()
        if letter not in alphabet:
            return False
        for word in words[1:]:
            word = text.strip_punctuation(word).lower()
            if not word:
                continue
            letter = alphabet[(alphabet.index(letter) + 1) % 26]
            if word[0] != letter:
                return False
        return True

    def describe(self) -> str:
        return ("Each word must start with the next letter of the alphabet, looping back to "
                "'A' after 'Z'.")


@dataclass(frozen=True)
class ThreeVowelParagraph(Instruction):
    """One line of text using at most three of the vowels a, e, i, o, u."""

    id = "words:vowel"

    def check(self, response: str) -> bool:
        lines = response.strip().split("\n")
        return len(lines) == 1 and len(VOWELS.intersection(lines[0].lower())) <= 3

    def describe(self) -> str:
        return "Write a paragraph using words that contain only three types of vowels."


@dataclass(frozen=True)
class ConsonantClusters(Instruction):
    """Every whitespace word holds two consonants in a row."""

    id = "words:consonants"

    def check(self, response: str) -> bool:
        return all(any(a in CONSONANTS and b in CONSONANTS for a, b in pairwise(word))
                   for word in response.lower().strip().split())

    def describe(self) -> str:
        return ("Ensure each word in your response has at least one consonant cluster (two or "
                "more consonants together).")


def _alliteration(sentence: str) -> int:
    """Words in runs of consecutive words sharing a first letter (a run of k counts k)."""
    words = [w for w in (word.lstrip(_EDGE) for word in sentence.lower().split()) if w]
    count, in_run = 0, False
    for current, following in pairwise(words):
        if current[0] == following[0]:
            count += 1 if in_run else 2
            in_run = True
        else:
            in_run = False
    return count


@dataclass(frozen=True)
class IncreasingAlliteration(Instruction):
    id = "sentence:alliteration_increment"

    def check(self, response: str) -> bool:
        previous = -1
        for sentence in text.split_sentences(response):
            current = _alliteration(sentence)
            if current <= previous:
                return False
            previous = current
        return True

    def describe(self) -> str:
        return ("Each sentence must have a longer sequence of consecutive alliterative words "
                "than the previous one.")


@dataclass(frozen=True)
class Palindromes(Instruction):
    id = "words:palindrome"

    def check(self, response: str) -> bool:
        words = text.remove_punctuation(response).lower().split()
        return sum(1 for word in words if word == word[::-1] and len(word) >= 5) >= 10

    def describe(self) -> str:
        return "Include at least 10 single-word palindromes, each at least 5 characters long."


@dataclass(frozen=True)
class PrimeLengthWords(Instruction):
    id = "words:prime_lengths"

    def check(self, response: str) -> bool:
        return all(len(word) in PRIMES for word in text.remove_punctuation(response).split())

    def describe(self) -> str:
        return "Use only words with lengths that are prime numbers."


@dataclass(frozen=True)
class LimitedRepeats(Instruction):
    """No word (lowercased, punctuation deleted) appears more than ``small_n`` times."""

    id = "words:repeats"
    small_n: int

    def __post_init__(self) -> None:
        whole_number(self, "small_n")

    def check(self, response: str) -> bool:
        words = text.remove_punctuation(response.lower()).split()
        return all(times <= self.small_n for times in Counter(words).values())

    def describe(self) -> str:
        return f"The response should not repeat any word more than {self.small_n} times."


@dataclass(frozen=True)
class KeywordInSentence(Instruction):
    """Sentence N contains ``word`` (a case-insensitive substring, as the reference)."""

    id = "sentence:keyword"
    word: str
    N: int

    def __post_init__(self) -> None:
        non_empty_text(self, "word")
        whole_number(self, "N", minimum=1)

    def check(self, response: str) -> bool:
        sentences = text.split_sentences(response)
        return len(sentences) >= self.N and self.word.lower() in sentences[self.N - 1].lower()

    def describe(self) -> str:
        return f'The response must include keyword "{self.word}" in the {self.N}-th sentence.'


@dataclass(frozen=True)
class AlternatingSyllableParity(Instruction):
    """Consecutive words alternate between odd and even syllable counts (syllapy)."""

    id = "words:odd_even_syllables"

    def check(self, response: str) -> bool:
        words = text.remove_punctuation(response).lower().split()
        parities = (syllapy.count(word) % 2 for word in words if word.strip())
        return all(a != b for a, b in pairwise(parities))

    def describe(self) -> str:
        return "Alternate between words with odd and even numbers of syllables."


@dataclass(frozen=True)
class LastWordStartsNext(Instruction):
    id = "words:last_first"

    def check(self, response: str) -> bool:
        sentences = text.split_sentences(response)
        for current, following in pairwise(sentences):
            last = current.rstrip(_EDGE).split()
            first = following.lstrip(_EDGE).split()
            if not last or not first or last[-1].lower() != first[0].lower():
                return False
        return True

    def describe(self) -> str:
        return ("The last word of each sentence must become the first word of the next "
                "sentence.")


@dataclass(frozen=True)
class ParagraphEndsWithFirstWord(Instruction):
    """Each non-blank line ends with the word it starts with (case-insensitive)."""

    id = "words:paragraph_last_first"

    def check(self, response: str) -> bool:
        for line in response.split("\n"):
            words = text.strip_punctuation(line.strip().lower()).split()
            if words and words[0] != words[-1]:
                return False
        return True

    def describe(self) -> str:
        return ("Each paragraph must end with the same word it started with, separate "
                "paragraphs with a newline.")


@dataclass(frozen=True)
class IncreasingSentenceLength(Instruction):
    """Each sentence has exactly ``small_n`` more words (punctuation deleted) than the last."""

    id = "sentence:increment"
    small_n: int

    def __post_init__(self) -> None:
        whole_number(self, "small_n")

    def check(self, response: str) -> bool:
        lengths = [len(text.remove_punctuation(s).strip().split())
                   for s in text.split_sentences(response)]
        if not lengths:
            return False
        return all(b == a + self.small_n for a, b in pairwise(lengths))

    def describe(self) -> str:
        return (f"Each sentence must contain exactly {self.small_n} more words than the "
                "previous one.")


@dataclass(frozen=True)
class NoConsecutiveFirstLetter(Instruction):
    id = "words:no_consecutive"

    def check(self, response: str) -> bool:
        words = text.remove_punctuation(response.lower()).split()
        return all(a[0] != b[0] for a, b in pairwise(words))

    def describe(self) -> str:
        return "No two consecutive words can share the same first letter."


@dataclass(frozen=True)
class KeywordAtPosition(Instruction):
    """Token m of sentence n (``nltk.word_tokenize``, punctuation tokens count) is ``keyword``,
    exactly as written."""

    id = "words:keywords_specific_position"
    keyword: str
    n: int
    m: int

    def __post_init__(self) -> None:
        non_empty_text(self, "keyword")
        object.__setattr__(self, "keyword", self.keyword.strip())
        whole_number(self, "n", minimum=1)
        whole_number(self, "m", minimum=1)

    def check(self, response: str) -> bool:
        sentences = text.split_sentences(response)
        if len(sentences) < self.n:
            return False
        tokens = text.word_tokens(sentences[self.n - 1])
        return len(tokens) >= self.m and tokens[self.m - 1] == self.keyword

    def describe(self) -> str:
        return (f"Include keyword {self.keyword} in the {self.n}-th sentence, as the "
                f"{self.m}-th word of that sentence.")


@dataclass(frozen=True)
class SecondAndSecondToLastWord(Instruction):
    """The second and the second-to-last ``nltk.word_tokenize`` tokens are ``keyword``."""

    id = "words:words_position"
    keyword: str

    def __post_init__(self) -> None:
        non_empty_text(self, "keyword")
        object.__setattr__(self, "keyword", self.keyword.strip())

    def check(self, response: str) -> bool:
        tokens = text.word_tokens(response)
        return len(tokens) >= 2 and tokens[1] == tokens[-2] == self.keyword

    def describe(self) -> str:
        return ("The second word in your response and the second to last word in your "
                f"response should be the word {self.keyword}.")


CHECKERS: tuple[type[Instruction], ...] = (
    AlphabetChain, ThreeVowelParagraph, ConsonantClusters, IncreasingAlliteration, Palindromes,
    PrimeLengthWords, LimitedRepeats, KeywordInSentence, AlternatingSyllableParity,
    LastWordStartsNext, ParagraphEndsWithFirstWord, IncreasingSentenceLength,
    NoConsecutiveFirstLetter, KeywordAtPosition, SecondAndSecondToLastWord,
)
