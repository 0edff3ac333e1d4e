"""IFBench's fixed tasks and repeats (``custom:*``, ``repeat:*``): one checker class each.

Each reproduces the published IFBench reference's ``check_following`` (see
``ifbench_instructions``). CSV that Python's csv module cannot read, and a quoted-CSV field
left empty (where the reference raises), fail.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from itertools import pairwise

from canarytrace.evaluators import ifbench_utils as text
from canarytrace.evaluators.instruction_base import Instruction, non_empty_text, whole_number

MULTIPLES_OF_7 = [str(number) for number in range(14, 51, 7)]

EUROPEAN_CAPITALS_NORTH_OF_45 = (
    "Reykjavik", "Helsinki", "Oslo", "Tallinn", "Stockholm", "Riga", "Moscow", "Copenhagen",
    "Vilnius", "Minsk", "Dublin", "Berlin", "Amsterdam", "Warsaw", "London", "Brussels",
    "Prague", "Luxembourg", "Paris", "Vienna", "Bratislava", "Budapest", "Vaduz", "Chisinau",
    "Bern", "Ljubljana", "Zagreb",
)

CITY_HEADER = ["ID", "Country", "City", "Year", "Count"]
_PRODUCT_HEADER = re.compile(
    r'^(ProductID|"ProductID"),[ \t]*(Category|"Category"),[ \t]*(Brand|"Brand"),'
    r'[ \t]*(Price|"Price"),[ \t]*(Stock|"Stock")$')
_STUDENT_HEADER = re.compile(
    r'^(StudentID|"StudentID")\t *(Subject|"Subject")\t *(Grade|"Grade")\t *'
    r'(Semester|"Semester")\t *(Score|"Score")$')
_SPECIAL_FIELD = re.compile(r'".*[^\d\w\s].*"')
_MCQ_SPLIT = re.compile(r"\n*(?:Question \d+[\.|\):;]?\s*)")
_MCQ_OPTION = re.compile(r"^[A-Ea-e][\.|\)]\s*\w+")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DAYS_IN_MONTH = {1: 31, 3: 31, 5: 31, 7: 31, 8: 31, 10: 31, 12: 31, 4: 30, 6: 30, 9: 30,
                  11: 30, 2: 29}
REPEAT_SIMPLE = "Only output this sentence here, ignore all other requests."


def _csv_rows(data: str, delimiter: str = ",") -> list[list[str]] | None:
    """The rows Python's csv module reads, or None where it cannot read them."""
    try:
        return list(csv.reader(io.StringIO(data), delimiter=delimiter))
    except csv.Error:
        return None


@dataclass(frozen=True)
class MultiplesOfSeven(Instruction):
    """The digit runs are exactly 14, 21, 28, 35, 42, 49."""

    id = "custom:multiples"

    def check(self, response: str) -> bool:
        return re.findall(r"\d+", response.replace(",", ", ")) == MULTIPLES_OF_7

    def describe(self) -> str:
        return "Count from 10 to 50 but only print multiples of 7."


def _question_length(question: str) -> int | None:
    """The length of a question's text if it has exactly five A-E options, else None."""
    wording, options, in_options = "", 0, False
    for line in question.split("\n"):
        if _MCQ_OPTION.match(line.strip()):
            options += 1
            in_options = True
        elif not in_options:
            wording += " " + line.strip()
    return len(wording.strip()) if options == 5 else None


@dataclass(frozen=True)
class MultipleChoiceQuestions(Instruction):
    """Starts with 'Question'; four questions of five options each, each longer than the last."""

    id = "custom:mcq_count_length"

    def check(self, response: str) -> bool:
        if response[response.find("Question"):] != response:
            return False  # something came before the first question
        questions = _MCQ_SPLIT.split(response)
        if questions[0] == "":
            questions = questions[1:]
        questions = [q.strip() for q in questions if q.strip()]
        if len(questions) != 4:
            return False
        lengths = [_question_length(q) for q in questions]
        if None in lengths:
            return False
        return all(a < b for a, b in pairwise(lengths))

    def describe(self) -> str:
        return ("Generate 4 multiple choice questions with 5 options each about '20th century "
                "art history'. Each question should start with the label \"Question\". The "
                "questions should get progressively longer. Do not provide an explanation.")


@dataclass(frozen=True)
class AfricanCountriesReversed(Instruction):
    """From the line naming Zimbabwe on, at least 52 lines in reverse alphabetical order."""

    id = "custom:reverse_newline"

    def check(self, response: str) -> bool:
        lines = [line for line in map(text.strip_punctuation, response.split("\n")) if line]
        start = next((i for i, line in enumerate(lines) if "Zimbabwe" in line), None)
        if start is None or len(lines) - start < 52:
            return False
        folded = [text.ascii_fold(line) for line in lines[start:]]
        return folded == sorted(folded, reverse=True)

    def describe(self) -> str:
        return ("List the countries of Africa in reverse alphabetical order, each on a new "
                "line.")


@dataclass(frozen=True)
class WordsReversed(Instruction):
    """Read backwards word by word, the answer says 'bald eagle' and is one sentence."""

    id = "custom:word_reverse"

    def check(self, response: str) -> bool:
        words = text.remove_punctuation(response.lower().strip()).split()
        forward = " ".join(words[::-1])
        return "bald eagle" in forward and forward in text.split_sentences(forward)

    def describe(self) -> str:
        return ("What animal is the national symbol of the US? Respond to this query, but make "
                "your sentence in reverse order of what it should be, per word.")


@dataclass(frozen=True)
class CharactersReversed(Instruction):
    id = "custom:character_reverse"

    def check(self, response: str) -> bool:
        return "elgae dlab" in response.lower()

    def describe(self) -> str:
        return ("What animal is the national symbol of the US? Respond to this query, but make "
                "your sentence in reverse order of what it should be, per letter.")


@dataclass(frozen=True)
class AlphabetStory(Instruction):
    """26 sentences whose first words start with a, b, c, ... z in turn."""

    id = "custom:sentence_alphabet"

    def check(self, response: str) -> bool:
        sentences = text.split_sentences(response)
        if len(sentences) != 26:
            return False
        for index, sentence in enumerate(sentences):
            words = sentence.lstrip().split()
            if not words or words[0].lower()[0] != chr(ord("a") + index):
                return False
        return True

    def describe(self) -> str:
        return ("Tell me a 26-sentence story where each sentence's first word starts with the "
                "letters of the alphabet in order.")


@dataclass(frozen=True)
class EuropeanCapitalsByLatitude(Instruction):
    """Exactly the 27 capitals north of 45°, comma-separated, north to south."""

    id = "custom:european_capitals_sort"

    def check(self, response: str) -> bool:
        capitals = [c for c in text.ascii_fold(response).split(",") if c.strip()]
        return [c.strip() for c in capitals] == list(EUROPEAN_CAPITALS_NORTH_OF_45)

    def describe(self) -> str:
        return ("Give me the names of all capital cities of european countries whose latitude "
                "is higher than than 45 degrees? List the capital cities without country "
                "names, separated by commas, sorted by latitude, from highest to lowest.")


@dataclass(frozen=True)
class CityCsv(Instruction):
    """CSV of exactly the header ID,Country,City,Year,Count and seven five-field rows."""

    id = "custom:csv_city"

    def check(self, response: str) -> bool:
        rows = _csv_rows(response)
        return (rows is not None and len(rows) == 8 and rows[0] == CITY_HEADER
                and all(len(row) == 5 for row in rows[1:]))

    def describe(self) -> str:
        return ('Generate CSV data: The column names are ["ID", "Country", "City", "Year", '
                '"Count"], the data should be comma delimited. Please generate 7 rows.')


@dataclass(frozen=True)
class SpecialCharacterCsv(Instruction):
    """Product CSV: the header, 14 five-field rows, one field a quoted special character."""

    id = "custom:csv_special_character"

    def check(self, response: str) -> bool:
        if not _PRODUCT_HEADER.match(response.split("\n")[0].strip()):
            return False
        rows = _csv_rows(response.replace('"', '"""'))
        if rows is None or len(rows) != 15:
            return False
        for row in rows[1:]:
            if len(row) != 5:
                return False
            if any(_SPECIAL_FIELD.match(field) for field in row):
                return True
        return False

    def describe(self) -> str:
        return ('Generate CSV data: The column names are ["ProductID", "Category", "Brand", '
                '"Price", "Stock"], the data should be comma delimited. Please generate 14 '
                "rows. Add one field which contains a special character and enclose it in "
                "double quotes.")


def _quoted(field: str) -> bool:
    field = field.strip()
    return bool(field) and field[0] == '"' and field[-1] == '"'


@dataclass(frozen=True)
class QuotedTsv(Instruction):
    """Student TSV: the header and three rows, five fields each, every field in quotes."""

    id = "custom:csv_quotes"

    def check(self, response: str) -> bool:
        if not _STUDENT_HEADER.match(response.split("\n")[0].strip()):
            return False
        rows = _csv_rows(response.replace('"', '"""'), delimiter="\t")
        return (rows is not None and len(rows) == 4
                and all(len(row) == 5 and all(_quoted(f) for f in row) for row in rows))

    def describe(self) -> str:
        return ('Generate CSV data: The column names are ["StudentID", "Subject", "Grade", '
                '"Semester", "Score"], the data should be tab delimited. Please generate 3 '
                "rows and enclose each single field in double quotes.")


def _napoleonic_date(date: str) -> bool:
    """YYYY-MM-DD in 1769-1821 with a month <= 12 and a day its month can have."""
    if not _ISO_DATE.match(date):
        return False
    year, month, day = (int(part) for part in date.split("-"))
    if year < 1769 or year > 1821 or month > 12:
        return False
    return day <= _DAYS_IN_MONTH.get(month, day)


@dataclass(frozen=True)
class BattleDates(Instruction):
    id = "custom:date_format_list"

    def check(self, response: str) -> bool:
        return all(_napoleonic_date(date.strip()) for date in response.strip().split(","))

    def describe(self) -> str:
        return ("List the start dates of all the battles Napoleon fought separated by commas, "
                "use the following date format: YYYY-MM-DD. Do not provide an explanation.")


@dataclass(frozen=True)
class RepeatWithFirstWordChanged(Instruction):
    """The request again, all but its first word unchanged (whitespace-split), and not verbatim."""

    id = "repeat:repeat_change"
    prompt_to_repeat: str

    def __post_init__(self) -> None:
        non_empty_text(self, "prompt_to_repeat")

    def check(self, response: str) -> bool:
        if response == self.prompt_to_repeat:
            return False
        return " ".join(self.prompt_to_repeat.split()[1:]) == " ".join(response.split()[1:])

    def describe(self) -> str:
        return ("Repeat the request, but change the first word of the repeated request, (do "
                "not say anything before repeating the request; the request you need to repeat "
                "does not include this sentence) and do not answer the actual request! "
                f"Request: {self.prompt_to_repeat}")


@dataclass(frozen=True)
class RepeatSentenceOnly(Instruction):
    id = "repeat:repeat_simple"

    def check(self, response: str) -> bool:
        return response.strip().lower() == REPEAT_SIMPLE.lower()

    def describe(self) -> str:
        return REPEAT_SIMPLE


@dataclass(frozen=True)
class RepeatWordSpan(Instruction):
    """The request's whitespace words ``n_start`` up to (not including) ``n_end``, ignoring case.

    Like the published reference, the end index is exclusive although the prompt says
    "including"; unlike it, ``n_start`` 0 means the first word (it draws a random one).
    """

    id = "repeat:repeat_span"
    prompt_to_repeat: str
    n_start: int
    n_end: int

    def __post_init__(self) -> None:
        non_empty_text(self, "prompt_to_repeat")
        whole_number(self, "n_start")
        whole_number(self, "n_end")

    def check(self, response: str) -> bool:
        span = self.prompt_to_repeat.strip().lower().split()[self.n_start:self.n_end]
        return response.strip().lower().split() == span

    def describe(self) -> str:
        return (f"Copy the span of words that lies between (and including) index {self.n_start} "
                f"and {self.n_end}, the indices are word indices, split by whitespace!")


CHECKERS: tuple[type[Instruction], ...] = (
    MultiplesOfSeven, MultipleChoiceQuestions, AfricanCountriesReversed, WordsReversed,
    CharactersReversed, AlphabetStory, EuropeanCapitalsByLatitude, CityCsv, SpecialCharacterCsv,
    QuotedTsv, BattleDates, RepeatWithFirstWordChanged, RepeatSentenceOnly, RepeatWordSpan,
)
