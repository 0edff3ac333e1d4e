"""IFBench's counting and ratio constraints (``count:*``, ``ratio:*``): one checker class each.

Each reproduces the published IFBench reference's ``check_following`` (see
``ifbench_instructions`` for which version and why); where that version raised on an
empty input, the verdict is the one its later fix gives (False).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from canarytrace.evaluators import ifbench_utils as text
from canarytrace.evaluators.instruction_base import (
    Instruction,
    non_empty_text,
    real_number,
    whole_number,
)

COORDINATING_CONJUNCTIONS = ("and", "but", "for", "nor", "or", "so", "yet")

PERSON_NAMES = (
    "Emma", "Liam", "Sophia", "Jackson", "Olivia", "Noah", "Ava", "Lucas", "Isabella", "Mason",
    "Mia", "Ethan", "Charlotte", "Alexander", "Amelia", "Benjamin", "Harper", "Leo", "Zoe",
    "Daniel", "Chloe", "Samuel", "Lily", "Matthew", "Grace", "Owen", "Abigail", "Gabriel",
    "Ella", "Jacob", "Scarlett", "Nathan", "Victoria", "Elijah", "Layla", "Nicholas", "Audrey",
    "David", "Hannah", "Christopher", "Penelope", "Thomas", "Nora", "Andrew", "Aria", "Joseph",
    "Claire", "Ryan", "Stella", "Jonathan",
)

PRONOUNS = frozenset((
    "i", "me", "my", "mine", "myself", "we", "us", "our", "ours", "ourselves", "you", "your",
    "yours", "yourself", "yourselves", "he", "him", "his", "himself", "she", "her", "hers",
    "herself", "it", "its", "itself", "they", "them", "their", "theirs", "themselves",
))

COVERED_PUNCTUATION = frozenset(".,!?;:")
_JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")
KEYWORD_TIMES = (1, 2, 3, 5, 7)


def _sentence_endings(response: str) -> tuple[int, int, int]:
    """How many sentences end with '.', '?' and '!'."""
    sentences = text.split_sentences(response)
    return tuple(sum(1 for s in sentences if s.endswith(mark)) for mark in ".?!")


@dataclass(frozen=True)
class WordCountRange(Instruction):
    id = "count:word_count_range"
    min_words: int
    max_words: int

    def __post_init__(self) -> None:
        whole_number(self, "min_words")
        whole_number(self, "max_words")

    def check(self, response: str) -> bool:
        return self.min_words <= text.count_words(response) <= self.max_words

    def describe(self) -> str:
        return (f"The response must contain between {self.min_words} and {self.max_words} "
                "words.")


@dataclass(frozen=True)
class UniqueWordCount(Instruction):
    """At least N distinct whitespace words, lowercased, punctuation stripped from the ends."""

    id = "count:unique_word_count"
    N: int

    def __post_init__(self) -> None:
        whole_number(self, "N")

    def check(self, response: str) -> bool:
        words = {text.strip_punctuation(word) for word in response.lower().split()}
        return len(words) >= self.N

    def describe(self) -> str:
        return f"Use at least {self.N} unique words in the response."


@dataclass(frozen=True)
class StopWordRatio(Instruction):
    """Stopwords (NLTK's English list) are at most ``percentage``% of the ``\\w+`` words."""

    id = "ratio:stop_words"
    percentage: float

    def __post_init__(self) -> None:
        real_number(self, "percentage")

    def check(self, response: str) -> bool:
        words = text.count_words(response)
        if words == 0:
            return False
        return (text.count_stopwords(response) / words) * 100 <= self.percentage

    def describe(self) -> str:
        return (f"Ensure that stop words constitute no more than {self.percentage}% of the "
                "total words in your response.")


@dataclass(frozen=True)
class DeclarativeInterrogativeRatio(Instruction):
    id = "ratio:sentence_type"

    def check(self, response: str) -> bool:
        declarative, interrogative, _ = _sentence_endings(response)
        return declarative == 2 * interrogative

    def describe(self) -> str:
        return "Maintain a 2:1 ratio of declarative to interrogative sentences."


@dataclass(frozen=True)
class BalancedSentenceTypes(Instruction):
    id = "ratio:sentence_balance"

    def check(self, response: str) -> bool:
        declarative, interrogative, exclamatory = _sentence_endings(response)
        return declarative == interrogative == exclamatory

    def describe(self) -> str:
        return ("Ensure that the ratio of sentence types (declarative, interrogative, "
                "exclamatory) is balanced.")


@dataclass(frozen=True)
class ConjunctionCount(Instruction):
    """At least N different coordinating conjunctions; as in the reference, 'And' and 'and,'
    count as different ones (the words are compared as written)."""

    id = "count:conjunctions"
    small_n: int

    def __post_init__(self) -> None:
        whole_number(self, "small_n")

    def check(self, response: str) -> bool:
        used = {word for word in response.split()
                if text.strip_punctuation(word).lower() in COORDINATING_CONJUNCTIONS}
        return len(used) >= self.small_n

    def describe(self) -> str:
        return (f"Use at least {self.small_n} different coordinating conjunctions in the "
                "response.")


@dataclass(frozen=True)
class PersonNameCount(Instruction):
    """At least N of the 50 listed names appear (case-sensitive substrings, as the reference)."""

    id = "count:person_names"
    N: int

    def __post_init__(self) -> None:
        whole_number(self, "N")

    def check(self, response: str) -> bool:
        return sum(1 for name in PERSON_NAMES if name in response) >= self.N

    def describe(self) -> str:
        return (f"Mention at least {self.N} different person names in the response, from this "
                f"list of person names: {', '.join(PERSON_NAMES)} .")


@dataclass(frozen=True)
class TrigramOverlap(Instruction):
    """The share of the response's distinct character trigrams also in the reference text is
    within 2 points of ``percentage``."""

    id = "ratio:overlap"
    reference_text: str
    percentage: float

    def __post_init__(self) -> None:
        non_empty_text(self, "reference_text")
        real_number(self, "percentage")

    @functools.cached_property
    def _reference_trigrams(self) -> set[tuple[str, str, str]]:
        return text.char_trigrams(self.reference_text)

    def check(self, response: str) -> bool:
        trigrams = text.char_trigrams(response)
        if not trigrams:
            return False
        overlap = len(trigrams.intersection(self._reference_trigrams))
        share = overlap / len(trigrams)
        return self.percentage - 2 <= share * 100 <= self.percentage + 2

    def describe(self) -> str:
        return (f"Maintain a trigram overlap of {self.percentage}% (±2%) with the provided "
                "reference text.")


@dataclass(frozen=True)
class NumberCount(Instruction):
    """Exactly N digit runs once punctuation is deleted (so '3.5' and '1,000' are one each)."""

    id = "count:numbers"
    N: int

    def __post_init__(self) -> None:
        whole_number(self, "N")

    def check(self, response: str) -> bool:
        return len(re.findall(r"\d+", text.remove_punctuation(response))) == self.N

    def describe(self) -> str:
        return f"Include exactly {self.N} numbers in the response."


@dataclass(frozen=True)
class PunctuationCover(Instruction):
    """An interrobang (?! or !? or ‽) and each of . , ! ? ; : besides the first ?!/!? used."""

    id = "count:punctuation"

    def check(self, response: str) -> bool:
        if not ("!?" in response or "?!" in response or "\u203d" in response):
            return False
        rest = response.replace("?!", "", 1)
        if len(rest) == len(response):
            rest = response.replace("!?", "", 1)
        return set(rest) >= COVERED_PUNCTUATION

    def describe(self) -> str:
        return ("Use every standard punctuation mark at least once, including semicolons, "
                "colons, and the interrobang (?!).")


@dataclass(frozen=True)
class PronounCount(Instruction):
    """At least N personal, possessive and reflexive pronouns ('/' splits she/her/hers)."""

    id = "count:pronouns"
    N: int

    def __post_init__(self) -> None:
        whole_number(self, "N")

    def check(self, response: str) -> bool:
        words = text.remove_punctuation(response.replace("/", " ").lower()).split()
        return sum(1 for word in words if word in PRONOUNS) >= self.N

    def describe(self) -> str:
        return f"The response should include at least {self.N} pronouns."


@dataclass(frozen=True)
class EveryNthWordJapanese(Instruction):
    """Every Nth whitespace word (punctuation stripped; digits and empties exempt) holds kana
    or kanji."""

    id = "count:words_japanese"
    N: int

    def __post_init__(self) -> None:
        whole_number(self, "N", minimum=1)

    def check(self, response: str) -> bool:
        for position, word in enumerate(response.split(), start=1):
            word = text.strip_punctuation(word)
            if position % self.N == 0 and word and not word.isdigit() \
                    and not _JAPANESE.search(word):
                return False
        return True

    def describe(self) -> str:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(self.N % 10, "th")
        return f"Every {self.N}{suffix} word of your response must be in Japanese."


@dataclass(frozen=True)
class KeywordsMultiple(Instruction):
    """keyword1 once, keyword2 twice, keyword3 3, keyword4 5 and keyword5 7 times (substrings,
    case-insensitive, exact counts)."""

    id = "count:keywords_multiple"
    keyword1: str
    keyword2: str
    keyword3: str
    keyword4: str
    keyword5: str

    def __post_init__(self) -> None:
        for name in ("keyword1", "keyword2", "keyword3", "keyword4", "keyword5"):
            non_empty_text(self, name)
            object.__setattr__(self, name, getattr(self, name).strip())

    @property
    def keywords(self) -> tuple[str, ...]:
        return (self.keyword1, self.keyword2, self.keyword3, self.keyword4, self.keyword5)

    def check(self, response: str) -> bool:
        lowered = response.lower()
        return all(lowered.count(keyword.lower()) == times
                   for keyword, times in zip(self.keywords, KEYWORD_TIMES, strict=True))

    def describe(self) -> str:
        k1, k2, k3, k4, k5 = self.keywords
        return (f"Include keyword {k1} once in your response, keyword {k2} twice in your "
                f"response, keyword {k3} three times in your response, keyword {k4} five "
                f"times in your response, and keyword {k5} seven times in your response.")


@dataclass(frozen=True)
class SameLengthSentences(Instruction):
    """Exactly three sentences of the same length in characters."""

    id = "ratio:sentence_words"

    def check(self, response: str) -> bool:
        sentences = text.split_sentences(response)
        return len(sentences) == 3 and len({len(s.strip()) for s in sentences}) == 1

    def describe(self) -> str:
        return ("Respond with three sentences, all containing the same number of characters "
                "but using all different words.")


CHECKERS: tuple[type[Instruction], ...] = (
    WordCountRange, UniqueWordCount, StopWordRatio, DeclarativeInterrogativeRatio,
    BalancedSentenceTypes, ConjunctionCount, PersonNameCount, TrigramOverlap, NumberCount,
    PunctuationCover, PronounCount, EveryNthWordJapanese, KeywordsMultiple, SameLengthSentences,
)
