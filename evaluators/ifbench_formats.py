"""IFBench's layout and markup constraints (``format:*``): one checker class each.

Each reproduces the published IFBench reference's ``check_following`` (see
``ifbench_instructions``), including its quirks (the ``*`` split of ``format:sub-bullets``,
the list-while-iterating of ``format:line_indent``), since verdicts must agree with it.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from itertools import pairwise

from canarytrace.evaluators import ifbench_utils as text
from canarytrace.evaluators.instruction_base import Instruction, non_empty_text

_OPENERS = {")": "(", "]": "[", "}": "{"}
_LETTER_OPTIONS = re.compile(r"\W*[aA]\W*[bB]\W*[cC]\W*")


@dataclass(frozen=True)
class NestedBrackets(Instruction):
    """A run of (), [] or {} brackets nested at least five deep that closes correctly."""

    id = "format:parentheses"

    def check(self, response: str) -> bool:
        stack: list[str] = []
        deepest = 0
        for char in response:
            if char in "([{":
                stack.append(char)
                deepest = max(deepest, len(stack))
            elif char in _OPENERS:
                if stack and stack[-1] == _OPENERS[char]:
                    stack.pop()
                    if deepest >= 5 and len(stack) < deepest:
                        return True
                else:  # a mismatch starts the count again
                    stack, deepest = [], 0
        return False

    def describe(self) -> str:
        return "Nest parentheses (and [brackets {and braces}]) at least 5 levels deep."


@dataclass(frozen=True)
class NestedQuotes(Instruction):
    """Quotes (" and ') nested three deep; a quote closes when it matches the innermost one."""

    id = "format:quotes"

    def check(self, response: str) -> bool:
        stack: list[str] = []
        deepest = depth = 0
        for char in response:
            if stack and char == stack[-1]:
                stack.pop()
                depth -= 1
                if deepest - depth >= 3:
                    return True
            elif char in "\"'":
                stack.append(char)
                depth += 1
                deepest = max(deepest, depth)
        return False

    def describe(self) -> str:
        return ("Include quotes within quotes within quotes, at least 3 levels deep, "
                "alternating between double quotes and single quotes.")


def _split_options(options: str) -> list[str]:
    """The options text split on '/', else on 'or' (anywhere, as the reference), else ','."""
    separator = "/" if "/" in options else "or" if "or" in options else ","
    return [option.strip() for option in options.split(separator)]


@dataclass(frozen=True)
class AnswerFromOptions(Instruction):
    """The whole answer is one of the options: exactly as written for a), b), c) choices,
    else ignoring case and surrounding punctuation."""

    id = "format:options"
    options: str

    def __post_init__(self) -> None:
        non_empty_text(self, "options")

    def check(self, response: str) -> bool:
        choices = _split_options(self.options)
        if _LETTER_OPTIONS.match(self.options):
            return response in choices
        answer = text.strip_punctuation(response).lower()
        return any(text.strip_punctuation(choice).lower() == answer for choice in choices)

    def describe(self) -> str:
        return (f"Answer with one of the following options: {self.options}. Do not give any "
                "explanation.")


@dataclass(frozen=True)
class WordPerLine(Instruction):
    id = "format:newline"

    def check(self, response: str) -> bool:
        bare = text.remove_punctuation(response).strip()
        lines = [line for line in bare.split("\n") if line != ""]
        return len(lines) == len(bare.split())

    def describe(self) -> str:
        return "Write each word on a new line."


@dataclass(frozen=True)
class EmojiPerSentence(Instruction):
    """Each sentence ends with an emoji (in its last two characters, punctuation deleted) or
    the next sentence starts with one."""

    id = "format:emoji"

    def check(self, response: str) -> bool:
        sentences = text.split_sentences(response)
        for index, sentence in enumerate(sentences):
            bare = text.remove_punctuation(sentence).strip()
            if not bare:
                return False
            if text.is_emoji(bare[-1]) or text.is_emoji(bare[-2] if len(bare) > 1 else bare[-1]):
                continue
            if index == len(sentences) - 1:
                return False
            following = text.remove_punctuation(sentences[index + 1]).strip()
            if not following or not text.is_emoji(following[0]):
                return False
        return True

    def describe(self) -> str:
        return "Please use an emoji at the end of every sentence."


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


@dataclass(frozen=True)
class IndentStairs(Instruction):
    """Each line is indented (spaces) deeper than the one before it."""

    id = "format:line_indent"

    def check(self, response: str) -> bool:
        lines = response.split("\n")
        # The reference removes blank lines while iterating over the same list, which skips
        # the line after each one it removes; the verdicts depend on it, so do the same.
        for line in lines:
            if not line.strip():
                lines.remove(line)
        return all(_indent(b) > _indent(a) for a, b in pairwise(lines))

    def describe(self) -> str:
        return "Create stairs by incrementally indenting each new line."


_QUOTE_EDGE = string.digits + string.punctuation.replace('"', "")


@dataclass(frozen=True)
class QuoteThenExplanation(Instruction):
    """No two quoted phrases back to back, and the text does not end on a quote."""

    id = "format:quote_unquote"

    def check(self, response: str) -> bool:
        squeezed = response.replace("\u201c", '"').replace("\u201d", '"')
        squeezed = "".join(squeezed.replace("'\"'", "").split())
        if '""' in squeezed:
            return False
        stripped = squeezed.strip(_QUOTE_EDGE)
        return not (stripped and stripped[-1] == '"')

    def describe(self) -> str:
        return "Every quoted phrase must be followed by an unquoted explanation."


@dataclass(frozen=True)
class SeparatorList(Instruction):
    """The separator ``sep`` appears at least twice."""

    id = "format:list"
    sep: str

    def __post_init__(self) -> None:
        non_empty_text(self, "sep")

    def check(self, response: str) -> bool:
        return response.count(self.sep) >= 2

    def describe(self) -> str:
        return f"Answer with a list of items, instead of bullet points use {self.sep}."


@dataclass(frozen=True)
class ItalicThesis(Instruction):
    """An <i> (or <em>) thesis with text in it, closed, and followed by more text."""

    id = "format:thesis"

    def check(self, response: str) -> bool:
        start = response.find("<i>")
        if start == -1:
            start = response.find("<em>")
            if start == -1:
                return False
        rest = response[start:]
        end = rest.find("</i>")
        if end == -1:
            end = rest.find("</em>")
            if end == -1:
                return False
        return rest[3:end].strip() != "" and rest[end + 4:].strip() != ""

    def describe(self) -> str:
        return ("Each section must begin with a thesis statement in italics, use HTML to "
                "indicate the italics.")


@dataclass(frozen=True)
class SubBullets(Instruction):
    """Every piece of the text after a ``*`` holds a ``-`` (the reference's test)."""

    id = "format:sub-bullets"

    def check(self, response: str) -> bool:
        return all("-" in piece for piece in response.split("*")[1:])

    def describe(self) -> str:
        return ("Your response must include bullet points denoted by * and at least one "
                "sub-bullet point denoted by - for each bullet point.")


@dataclass(frozen=True)
class SentencesThenBullets(Instruction):
    """At least two sentences, then at least two ``*`` bullet lines, and nothing after."""

    id = "format:no_bullets_bullets"

    def check(self, response: str) -> bool:
        in_prose, sentences, bullets = True, 0, 0
        for line in response.split("\n"):
            if line.strip().startswith("*"):
                in_prose = False
                if sentences < 2:
                    return False
                bullets += 1
            elif in_prose:
                found = text.split_sentences(line.strip())
                in_prose = bool(found)  # the reference reuses its flag for the list
                sentences += len(found)
            else:
                return False
        return bullets >= 2

    def describe(self) -> str:
        return ("Your answer must contain at least two sentences ending in a period followed "
                "by at least two bullet points denoted by *.")


@dataclass(frozen=True)
class TitleCase(Instruction):
    """No ``nltk.word_tokenize`` token is all-lowercase, or lowercase-then-uppercase."""

    id = "format:title_case"

    def check(self, response: str) -> bool:
        for token in text.word_tokens(response):
            head, tail = token[0], token[1:]
            if head.isupper() and tail.islower():
                continue
            if head.islower() and (tail.isupper() or tail.islower()):
                return False
        return True

    def describe(self) -> str:
        return ("Write the entire response in title case (capitalize the first letter of every "
                "major word).")


@dataclass(frozen=True)
class OutputTemplate(Instruction):
    id = "format:output_template"

    def check(self, response: str) -> bool:
        return all(label in response
                   for label in ("My Answer:", "My Conclusion:", "Future Outlook:"))

    def describe(self) -> str:
        return ("Use this exact template for your response: My Answer: [answer] My Conclusion: "
                "[conclusion] Future Outlook: [outlook]")


@dataclass(frozen=True)
class NoWhitespace(Instruction):
    id = "format:no_whitespace"

    def check(self, response: str) -> bool:
        return not any(char.isspace() for char in response)

    def describe(self) -> str:
        return "The output should not contain any whitespace."


CHECKERS: tuple[type[Instruction], ...] = (
    NestedBrackets, NestedQuotes, AnswerFromOptions, WordPerLine, EmojiPerSentence,
    IndentStairs, QuoteThenExplanation, SeparatorList, ItalicThesis, SubBullets,
    SentencesThenBullets, TitleCase, OutputTemplate, NoWhitespace,
)
