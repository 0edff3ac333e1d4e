"""IFEval's 25 verifiable instructions, one checker class each, and the registry by id.

The registry also holds IFBench's checkers (``ifbench_instructions``); ``build_instruction``
is the one way in for both.

Each checker is built from the instruction's kwargs (IFEval names, e.g.
``{"num_words": 300, "relation": "at least"}``) and says whether a response follows
it. Verdicts reproduce the reference implementation (google-research
``instruction_following_eval``) with two deliberate differences: keywords and
markers are matched literally (the reference reads them as regular expressions), and
``keywords:letter_frequency`` counts the character asked for even when it is not a
letter (the reference silently draws a random letter instead).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from canarytrace.evaluators import instruction_utils as text
from canarytrace.evaluators.ifbench_instructions import IFBENCH_INSTRUCTIONS, UNVERIFIABLE
from canarytrace.evaluators.instruction_base import (
    Instruction,
    InstructionError,
    UnknownInstruction,
    UnverifiableInstruction,
)

__all__ = [
    "INSTRUCTIONS", "Instruction", "InstructionError", "UnknownInstruction",
    "UnverifiableInstruction", "build_instruction", "follows_loose", "follows_strict",
    "loose_variants",
]

LESS_THAN = "less than"
AT_LEAST = "at least"
RELATIONS = (LESS_THAN, AT_LEAST)

CONSTRAINED_RESPONSES = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


# --- argument validation ----------------------------------------------------

def _require_count(name: str, value: Any, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InstructionError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _require_relation(name: str, value: Any) -> None:
    if value not in RELATIONS:
        raise InstructionError(f"{name} must be 'less than' or 'at least', got {value!r}")


def _require_text(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InstructionError(f"{name} must be a non-empty string, got {value!r}")


def _require_texts(name: str, value: Any) -> None:
    if not isinstance(value, list) or not value:
        raise InstructionError(f"{name} must be a non-empty list of strings, got {value!r}")
    for item in value:
        _require_text(f"each of {name}", item)


def _compare(actual: int, relation: str, threshold: int) -> bool:
    return actual < threshold if relation == LESS_THAN else actual >= threshold


# --- the checkers -----------------------------------------------------------

@dataclass(frozen=True)
class IncludeKeywords(Instruction):
    id = "keywords:existence"
    keywords: list[str]

    def __post_init__(self) -> None:
        _require_texts("keywords", self.keywords)

    def check(self, response: str) -> bool:
        return all(re.search(re.escape(word), response, re.IGNORECASE) for word in self.keywords)

    def describe(self) -> str:
        return f"Include keywords {sorted(self.keywords)} in the response."


@dataclass(frozen=True)
class KeywordFrequency(Instruction):
    id = "keywords:frequency"
    keyword: str
    frequency: int
    relation: str

    def __post_init__(self) -> None:
        _require_text("keyword", self.keyword)
        _require_count("frequency", self.frequency)
        _require_relation("relation", self.relation)

    def check(self, response: str) -> bool:
        pattern = re.escape(self.keyword.strip())
        occurrences = len(re.findall(pattern, response, re.IGNORECASE))
        return _compare(occurrences, self.relation, self.frequency)

    def describe(self) -> str:
        return (f"In your response, the word {self.keyword} should appear "
                f"{self.relation} {self.frequency} times.")


@dataclass(frozen=True)
class ForbiddenWords(Instruction):
    id = "keywords:forbidden_words"
    forbidden_words: list[str]

    def __post_init__(self) -> None:
        _require_texts("forbidden_words", self.forbidden_words)

    def check(self, response: str) -> bool:
        return not any(
            re.search(rf"\b{re.escape(word)}\b", response, re.IGNORECASE)
            for word in self.forbidden_words
        )

    def describe(self) -> str:
        return f"Do not include keywords {sorted(set(self.forbidden_words))} in the response."


@dataclass(frozen=True)
class LetterFrequency(Instruction):
    id = "keywords:letter_frequency"
    letter: str
    let_frequency: int
    let_relation: str

    def __post_init__(self) -> None:
        if not isinstance(self.letter, str) or len(self.letter.strip()) != 1:
            raise InstructionError(f"letter must be a single character, got {self.letter!r}")
        _require_count("let_frequency", self.let_frequency)
        _require_relation("let_relation", self.let_relation)

    def check(self, response: str) -> bool:
        occurrences = Counter(response.lower())[self.letter.strip().lower()]
        return _compare(occurrences, self.let_relation, self.let_frequency)

    def describe(self) -> str:
        return (f"In your response, the letter {self.letter.strip()} should appear "
                f"{self.let_relation} {self.let_frequency} times.")


@dataclass(frozen=True)
class ResponseLanguage(Instruction):
    """Passes when langdetect cannot tell the language, as the reference does."""

    id = "language:response_language"
    language: str

    def __post_init__(self) -> None:
        _require_text("language", self.language)

    def check(self, response: str) -> bool:
        return text.detect_language(response) in (self.language, None)

    def describe(self) -> str:
        return (f"Your ENTIRE response should be in language '{self.language}', "
                "no other language is allowed.")


@dataclass(frozen=True)
class SentenceCount(Instruction):
    id = "length_constraints:number_sentences"
    num_sentences: int
    relation: str

    def __post_init__(self) -> None:
        _require_count("num_sentences", self.num_sentences)
        _require_relation("relation", self.relation)

    def check(self, response: str) -> bool:
        return _compare(text.count_sentences(response), self.relation, self.num_sentences)

    def describe(self) -> str:
        return f"Your response should contain {self.relation} {self.num_sentences} sentences."


@dataclass(frozen=True)
class DividedParagraphCount(Instruction):
    """Exactly N paragraphs separated by the markdown divider ``***``."""

    id = "length_constraints:number_paragraphs"
    num_paragraphs: int

    def __post_init__(self) -> None:
        _require_count("num_paragraphs", self.num_paragraphs)

    def check(self, response: str) -> bool:
        paragraphs = re.split(r"\s?\*\*\*\s?", response)
        last = len(paragraphs) - 1
        if any(not p.strip() for i, p in enumerate(paragraphs) if i not in (0, last)):
            return False  # an empty paragraph between two dividers
        return sum(1 for p in paragraphs if p.strip()) == self.num_paragraphs

    def describe(self) -> str:
        return (f"There should be {self.num_paragraphs} paragraphs. "
                "Paragraphs are separated with the markdown divider: ***")


@dataclass(frozen=True)
class WordCount(Instruction):
    id = "length_constraints:number_words"
    num_words: int
    relation: str

    def __post_init__(self) -> None:
        _require_count("num_words", self.num_words)
        _require_relation("relation", self.relation)

    def check(self, response: str) -> bool:
        return _compare(text.count_words(response), self.relation, self.num_words)

    def describe(self) -> str:
        return f"Answer with {self.relation} {self.num_words} words."


_FIRST_WORD_STOP = frozenset(".,?!'\"")


def _first_word(paragraph: str) -> str:
    """The paragraph's first word, lowercased, without leading quotes or trailing punctuation."""
    word = paragraph.split()[0].strip().lstrip("'").lstrip('"')
    letters = []
    for char in word:
        if char in _FIRST_WORD_STOP:
            break
        letters.append(char.lower())
    return "".join(letters)


@dataclass(frozen=True)
class NthParagraphFirstWord(Instruction):
    """N paragraphs separated by blank lines; paragraph ``nth_paragraph`` starts with a word."""

    id = "length_constraints:nth_paragraph_first_word"
    num_paragraphs: int
    nth_paragraph: int
    first_word: str

    def __post_init__(self) -> None:
        _require_count("num_paragraphs", self.num_paragraphs, minimum=1)
        _require_count("nth_paragraph", self.nth_paragraph, minimum=1)
        if self.nth_paragraph > self.num_paragraphs:
            raise InstructionError(
                f"nth_paragraph ({self.nth_paragraph}) must be at most "
                f"num_paragraphs ({self.num_paragraphs})")
        _require_text("first_word", self.first_word)

    def check(self, response: str) -> bool:
        paragraphs = response.split("\n\n")
        non_empty = sum(1 for p in paragraphs if p.strip())
        # Like the reference, the index counts empty chunks too.
        if self.nth_paragraph > non_empty:
            return False
        paragraph = paragraphs[self.nth_paragraph - 1].strip()
        if not paragraph:
            return False
        return (non_empty == self.num_paragraphs
                and _first_word(paragraph) == self.first_word.lower())

    def describe(self) -> str:
        return (f"There should be {self.num_paragraphs} paragraphs, separated by two new "
                f"lines. Paragraph {self.nth_paragraph} must start with word "
                f"{self.first_word}.")


@dataclass(frozen=True)
class PlaceholderCount(Instruction):
    id = "detectable_content:number_placeholders"
    num_placeholders: int

    def __post_init__(self) -> None:
        _require_count("num_placeholders", self.num_placeholders)

    def check(self, response: str) -> bool:
        return len(re.findall(r"\[.*?\]", response)) >= self.num_placeholders

    def describe(self) -> str:
        return (f"The response must contain at least {self.num_placeholders} placeholders "
                "represented by square brackets, such as [address].")


@dataclass(frozen=True)
class Postscript(Instruction):
    id = "detectable_content:postscript"
    postscript_marker: str

    def __post_init__(self) -> None:
        _require_text("postscript_marker", self.postscript_marker)

    def _pattern(self) -> str:
        marker = self.postscript_marker.strip()
        if marker == "P.P.S":
            return r"\s*p\.\s?p\.\s?s.*$"
        if marker == "P.S.":
            return r"\s*p\.\s?s\..*$"
        return r"\s*" + re.escape(marker.lower()) + r".*$"

    def check(self, response: str) -> bool:
        return bool(re.findall(self._pattern(), response.lower(), flags=re.MULTILINE))

    def describe(self) -> str:
        return ("At the end of your response, please explicitly add a postscript starting "
                f"with {self.postscript_marker.strip()}")


@dataclass(frozen=True)
class BulletPointCount(Instruction):
    """Exactly N markdown bullet points (``*`` or ``-`` items)."""

    id = "detectable_format:number_bullet_lists"
    num_bullets: int

    def __post_init__(self) -> None:
        _require_count("num_bullets", self.num_bullets)

    def check(self, response: str) -> bool:
        stars = re.findall(r"^\s*\*[^\*].*$", response, flags=re.MULTILINE)
        dashes = re.findall(r"^\s*-.*$", response, flags=re.MULTILINE)
        return len(stars) + len(dashes) == self.num_bullets

    def describe(self) -> str:
        return f"Your answer must contain exactly {self.num_bullets} markdown bullet points."


@dataclass(frozen=True)
class ConstrainedResponse(Instruction):
    id = "detectable_format:constrained_response"

    def check(self, response: str) -> bool:
        response = response.strip()
        return any(option in response for option in CONSTRAINED_RESPONSES)

    def describe(self) -> str:
        return f"Answer with one of the following options: {', '.join(CONSTRAINED_RESPONSES)}"


@dataclass(frozen=True)
class HighlightedSectionCount(Instruction):
    """At least N non-empty ``*highlighted*`` (or ``**bold**``) spans."""

    id = "detectable_format:number_highlighted_sections"
    num_highlights: int

    def __post_init__(self) -> None:
        _require_count("num_highlights", self.num_highlights)

    def check(self, response: str) -> bool:
        single = re.findall(r"\*[^\n\*]*\*", response)
        double = re.findall(r"\*\*[^\n\*]*\*\*", response)
        count = sum(1 for span in single if span.strip("*").strip())
        count += sum(1 for span in double if span[2:-2].strip())
        return count >= self.num_highlights

    def describe(self) -> str:
        return (f"Highlight at least {self.num_highlights} sections in your answer with "
                "markdown, i.e. *highlighted section*.")


@dataclass(frozen=True)
class SectionCount(Instruction):
    """At least N sections, each starting with ``<spliter> <number>`` (e.g. ``SECTION 2``)."""

    id = "detectable_format:multiple_sections"
    section_spliter: str
    num_sections: int

    def __post_init__(self) -> None:
        _require_text("section_spliter", self.section_spliter)
        _require_count("num_sections", self.num_sections)

    def check(self, response: str) -> bool:
        splitter = r"\s?" + re.escape(self.section_spliter.strip()) + r"\s?\d+\s?"
        return len(re.split(splitter, response)) - 1 >= self.num_sections

    def describe(self) -> str:
        return (f"Your response must have {self.num_sections} sections. Mark the beginning "
                f"of each section with {self.section_spliter.strip()} X.")


@dataclass(frozen=True)
class JsonOutput(Instruction):
    """The whole output is JSON, optionally inside a markdown code fence."""

    id = "detectable_format:json_format"

    def check(self, response: str) -> bool:
        body = response.strip()
        for fence in ("```json", "```Json", "```JSON", "```"):
            body = body.removeprefix(fence)
        body = body.removesuffix("```").strip()
        try:
            json.loads(body)
        except (ValueError, RecursionError):
            return False
        return True

    def describe(self) -> str:
        return "Entire output should be wrapped in JSON format. You can use markdown ticks."


@dataclass(frozen=True)
class Title(Instruction):
    id = "detectable_format:title"

    def check(self, response: str) -> bool:
        titles = re.findall(r"<<[^\n]+>>", response)
        return any(title.lstrip("<").rstrip(">").strip() for title in titles)

    def describe(self) -> str:
        return "Your answer must contain a title, wrapped in double angular brackets."


@dataclass(frozen=True)
class TwoResponses(Instruction):
    """Two different answers separated by ``******``, and nothing else between separators."""

    id = "combination:two_responses"

    def check(self, response: str) -> bool:
        parts = response.split("******")
        last = len(parts) - 1
        answers = []
        for index, part in enumerate(parts):
            if part.strip():
                answers.append(part.strip())
            elif index not in (0, last):
                return False
        return len(answers) == 2 and answers[0] != answers[1]

    def describe(self) -> str:
        return ("Give two different responses. Responses and only responses should be "
                "separated by 6 asterisk symbols: ******.")


@dataclass(frozen=True)
class RepeatPromptFirst(Instruction):
    id = "combination:repeat_prompt"
    prompt_to_repeat: str

    def __post_init__(self) -> None:
        _require_text("prompt_to_repeat", self.prompt_to_repeat)

    def check(self, response: str) -> bool:
        return response.strip().lower().startswith(self.prompt_to_repeat.strip().lower())

    def describe(self) -> str:
        return ("First repeat the request word for word without change, then give your "
                "answer.")


@dataclass(frozen=True)
class EndsWithPhrase(Instruction):
    id = "startend:end_checker"
    end_phrase: str

    def __post_init__(self) -> None:
        _require_text("end_phrase", self.end_phrase)

    def check(self, response: str) -> bool:
        ending = response.strip().strip('"').lower()
        return ending.endswith(self.end_phrase.strip().lower())

    def describe(self) -> str:
        return (f"Finish your response with this exact phrase {self.end_phrase.strip()}. "
                "No other words should follow this phrase.")


@dataclass(frozen=True)
class CapitalWordFrequency(Instruction):
    id = "change_case:capital_word_frequency"
    capital_frequency: int
    capital_relation: str

    def __post_init__(self) -> None:
        _require_count("capital_frequency", self.capital_frequency)
        _require_relation("capital_relation", self.capital_relation)

    def check(self, response: str) -> bool:
        capitals = sum(1 for word in text.word_tokens(response) if word.isupper())
        return _compare(capitals, self.capital_relation, self.capital_frequency)

    def describe(self) -> str:
        return ("In your response, words with all capital letters should appear "
                f"{self.capital_relation} {self.capital_frequency} times.")


@dataclass(frozen=True)
class EnglishUppercase(Instruction):
    id = "change_case:english_capital"

    def check(self, response: str) -> bool:
        return response.isupper() and text.detect_language(response) in ("en", None)

    def describe(self) -> str:
        return "Your entire response should be in English, and in all capital letters."


@dataclass(frozen=True)
class EnglishLowercase(Instruction):
    id = "change_case:english_lowercase"

    def check(self, response: str) -> bool:
        return response.islower() and text.detect_language(response) in ("en", None)

    def describe(self) -> str:
        return ("Your entire response should be in English, and in all lowercase letters. "
                "No capital letters are allowed.")


@dataclass(frozen=True)
class NoCommas(Instruction):
    id = "punctuation:no_comma"

    def check(self, response: str) -> bool:
        return "," not in response

    def describe(self) -> str:
        return "In your entire response, refrain from the use of any commas."


@dataclass(frozen=True)
class WrappedInQuotes(Instruction):
    id = "startend:quotation"

    def check(self, response: str) -> bool:
        response = response.strip()
        return len(response) > 1 and response[0] == '"' and response[-1] == '"'

    def describe(self) -> str:
        return "Wrap your entire response with double quotation marks."


# --- the registry -----------------------------------------------------------

INSTRUCTIONS: dict[str, type[Instruction]] = {
    checker.id: checker
    for checker in (
        IncludeKeywords, KeywordFrequency, ForbiddenWords, LetterFrequency,
        ResponseLanguage,
        SentenceCount, DividedParagraphCount, WordCount, NthParagraphFirstWord,
        PlaceholderCount, Postscript,
        BulletPointCount, ConstrainedResponse, HighlightedSectionCount, SectionCount,
        JsonOutput, Title,
        TwoResponses, RepeatPromptFirst,
        EndsWithPhrase, WrappedInQuotes,
        CapitalWordFrequency, EnglishUppercase, EnglishLowercase,
        NoCommas,
    )
} | IFBENCH_INSTRUCTIONS


def build_instruction(instruction_id: str, kwargs: Mapping[str, Any] | None = None) -> Instruction:
    """The checker for ``instruction_id`` with ``kwargs`` (None values count as absent).

    Raises UnknownInstruction for an id no checker covers (UnverifiableInstruction for one
    that cannot be checked offline), InstructionError for bad kwargs.
    """
    if (unverifiable := UNVERIFIABLE.get(instruction_id)) is not None:
        raise UnverifiableInstruction(
            f"{instruction_id} is not checked offline: {unverifiable.reason}",
            unverifiable.wording)
    checker = INSTRUCTIONS.get(instruction_id)
    if checker is None:
        raise UnknownInstruction(f"no checker for instruction id {instruction_id!r}")
    given = {name: value for name, value in (kwargs or {}).items() if value is not None}
    expected = {field.name for field in dataclasses.fields(checker)}
    if unexpected := sorted(given.keys() - expected):
        raise InstructionError(
            f"{instruction_id}: unexpected argument(s) {', '.join(unexpected)} "
            f"(expected: {', '.join(sorted(expected)) or 'none'})")
    if missing := sorted(expected - given.keys()):
        raise InstructionError(f"{instruction_id}: missing argument(s) {', '.join(missing)}")
    try:
        return checker(**given)
    except InstructionError as exc:
        raise InstructionError(f"{instruction_id}: {exc}") from None


# --- strict and loose verdicts ------------------------------------------------

def loose_variants(response: str) -> list[str]:
    """The response and IFEval's seven relaxed readings (first/last line dropped, no ``*``)."""
    lines = response.split("\n")
    trimmed = [
        response,
        "\n".join(lines[1:]).strip(),
        "\n".join(lines[:-1]).strip(),
        "\n".join(lines[1:-1]).strip(),
    ]
    variants = trimmed + [variant.replace("*", "") for variant in trimmed]
    return list(dict.fromkeys(variants))  # distinct readings, in IFEval's order


def follows_strict(instruction: Instruction, response: str) -> bool:
    """Whether the response as written follows the instruction (an empty response never does)."""
    return bool(response.strip()) and instruction.check(response)


def follows_loose(instruction: Instruction, response: str) -> bool:
    """Whether any loose reading of the response follows the instruction."""
    return any(follows_strict(instruction, variant) for variant in loose_variants(response))
