"""The IFBench checkers: a pass and a fail each, the reference's quirks, kwargs, the registry."""

from __future__ import annotations

import pytest

from canarytrace.evaluators.ifbench_instructions import IFBENCH_IDS, IFBENCH_INSTRUCTIONS
from canarytrace.evaluators.instructions import (
    INSTRUCTIONS,
    InstructionError,
    UnverifiableInstruction,
    build_instruction,
    follows_loose,
    follows_strict,
)

REQUEST = "Write a short story about a lighthouse keeper who finds a map in a bottle."
AFRICA = sorted([
    "Algeria", "Angola", "Benin", "Botswana", "Burkina Faso", "Burundi", "Cabo Verde",
    "Cameroon", "Central African Republic", "Chad", "Comoros", "Congo", "Côte d'Ivoire",
    "Djibouti", "Egypt", "Equatorial Guinea", "Eritrea", "Eswatini", "Ethiopia", "Gabon",
    "Gambia", "Ghana", "Guinea", "Guinea-Bissau", "Kenya", "Lesotho", "Liberia", "Libya",
    "Madagascar", "Malawi", "Mali", "Mauritania", "Mauritius", "Morocco", "Mozambique",
    "Namibia", "Niger", "Nigeria", "Rwanda", "Sao Tome and Principe", "Senegal", "Seychelles",
    "Sierra Leone", "Somalia", "South Africa", "South Sudan", "Sudan", "Tanzania", "Togo",
    "Tunisia", "Uganda", "Zambia", "Zimbabwe"], reverse=True)
CAPITALS = ("Reykjavik, Helsinki, Oslo, Tallinn, Stockholm, Riga, Moscow, Copenhagen, Vilnius, "
            "Minsk, Dublin, Berlin, Amsterdam, Warsaw, London, Brussels, Prague, Luxembourg, "
            "Paris, Vienna, Bratislava, Budapest, Vaduz, Chisinau, Bern, Ljubljana, Zagreb")
MCQ = "\n\n".join(
    f"Question {n}: {'Which movement ' * n}mattered?\n" + "\n".join(f"{c}) Cubism" for c in "ABCDE")
    for n in range(1, 5))
CITY_CSV = "ID,Country,City,Year,Count\n" + "\n".join(
    f'{i},France,"Paris, FR",2020,{i * 3}' for i in range(1, 8))
SPECIAL_BRAND = '"A&B"'
PRODUCT_CSV = "ProductID,Category,Brand,Price,Stock\n" + "\n".join(
    f"{i},Tools,{SPECIAL_BRAND if i == 5 else 'Acme'},9.99,{i}" for i in range(1, 15))
STUDENT_TSV = '"StudentID"\t"Subject"\t"Grade"\t"Semester"\t"Score"\n' + "\n".join(
    f'"{i}"\t"Math"\t"A"\t"Fall"\t"9{i}"' for i in range(1, 4))
ALPHABET_STORY = " ".join(f"{chr(ord('A') + i)}lpha went home." for i in range(26))
PARAGRAPH = ("Avery saw a bright comet. Then Avery told the town. Nobody believed Avery. "
             "Later, the comet returned. Everyone watched.")
TWENTY_SENTENCES = " ".join(f"Sentence number {i} is here." for i in range(1, 21))

# (instruction id, kwargs, a response that follows it, one that does not)
CASES = [
    # count:*
    ("count:word_count_range", {"min_words": 3, "max_words": 5},
     "Deploy the canary now.", "Deploy the canary now, please, today."),
    ("count:unique_word_count", {"N": 4}, "One two, three! Four.", "Go go, GO! go."),
    ("count:conjunctions", {"small_n": 3}, "Tea and cake, but no coffee or juice.",
     "Tea and cake and more cake."),
    ("count:person_names", {"N": 2}, "Emma met Liam at noon.", "Emma met a friend at noon."),
    ("count:numbers", {"N": 3}, "We sold 3 units for 2.50 each to 1,000 people.",
     "We sold 3 units for 2 each."),
    ("count:punctuation", {}, "Really?! Yes, really; is it? Wow! Here: done.",
     "Really? Yes, really; is it? Wow! Here: done."),
    ("count:pronouns", {"N": 3}, "She said it was hers.", "The team said the work was done."),
    ("count:words_japanese", {"N": 2}, "Hello 世界 nice カタカナ", "Hello world nice カタカナ"),
    ("count:keywords_multiple", {"keyword1": "sun", "keyword2": "moon", "keyword3": "star",
                                 "keyword4": "sky", "keyword5": "rain"},
     "sun " + "moon " * 2 + "star " * 3 + "sky " * 5 + "rain " * 7,
     "sun " + "moon " * 2 + "star " * 3 + "sky " * 5 + "rain " * 6),
    # ratio:*
    ("ratio:stop_words", {"percentage": 40}, "Canary releases reduce deployment risk.",
     "It is what it is and that is all there is to it."),
    ("ratio:sentence_type", {}, "It works. It ships. Does it scale?",
     "It works. Does it ship? Does it scale?"),
    ("ratio:sentence_balance", {}, "It works. Does it? Wow!", "It works. It ships. Wow!"),
    ("ratio:overlap", {"reference_text": "the quick brown fox", "percentage": 100},
     "quick brown", "slow green turtle"),
    ("ratio:sentence_words", {}, "Cat sat. Dog ran. Fox hid.", "Cat sat. Dog ran. Horse ran."),
    # words:*
    ("words:alphabet", {}, "Zebras always bring cake.", "Zebras always carry cake."),
    ("words:vowel", {}, "A bad cat sat on a mat.", "A bad cat sat on a mat under the tree."),
    ("words:consonants", {}, "Strong blasts crack trees.", "Strong blasts hit trees."),
    ("words:palindrome", {}, "level racecar kayak madam refer civic radar rotor stats tenet",
     "level racecar kayak madam refer civic radar rotor stats noon"),
    ("words:prime_lengths", {}, "We are about to see it.", "We are here."),
    ("words:repeats", {"small_n": 2}, "Go team, go!", "Go team, go, GO!"),
    ("words:odd_even_syllables", {}, "cat apple dog water", "cat dog apple water"),
    ("words:last_first", {}, "I love the sea. Sea waves are calm. Calm seas are rare.",
     "I love the sea. Waves are calm."),
    ("words:paragraph_last_first", {}, "Time flies so fast, time.\nHome sweet home!",
     "Time flies so fast.\nHome sweet home!"),
    ("words:no_consecutive", {}, "Apples grow on every tree.", "Apples always grow."),
    ("words:keywords_specific_position", {"keyword": "canary", "n": 2, "m": 3},
     "We tested it. Then the canary passed.", "We tested it. Then a bird named canary passed."),
    ("words:words_position", {"keyword": "really"}, "I really think so, really .",
     "I really think so."),
    # sentence:*
    ("sentence:alliteration_increment", {}, "Nice day. Big bold bears. Silly snakes slither south.",
     "Big bold bears. Nice day."),
    ("sentence:keyword", {"word": "canary", "N": 2}, "We shipped. The canary held.",
     "The canary shipped. It held."),
    ("sentence:increment", {"small_n": 2}, "One two. One two three four.",
     "One two. One two three."),
    # format:*
    ("format:parentheses", {}, "Nested (a [b {c (d [e] f) g} h] i) text.", "Only (a [b] c) here."),
    ("format:quotes", {}, "He said \"she said 'they said \"hi\"'\" to me.",
     "He said \"she said 'hi'\" to me."),
    ("format:options", {"options": "yes/no/maybe"}, "Maybe.", "Maybe, if you ask nicely."),
    ("format:options", {"options": "a), b), c), d)"}, "c)", "c"),
    ("format:newline", {}, "one\ntwo\nthree", "one two\nthree"),
    ("format:emoji", {}, "We shipped 🚀. It held 🎉.", "We shipped 🚀. It held."),
    ("format:line_indent", {}, "a\n b\n  c", "a\n  b\n c"),
    ("format:quote_unquote", {}, "\"Carpe diem\" means seize the day.",
     "He said \"carpe diem\""),
    ("format:list", {"sep": "SEPARATOR"}, "SEPARATOR tea SEPARATOR cake", "SEPARATOR tea"),
    ("format:thesis", {}, "<i>Canaries cut risk.</i> Here is why.", "<i>Canaries cut risk.</i>"),
    ("format:sub-bullets", {}, "* Speed\n  - lower latency\n* Cost\n  - fewer GPUs",
     "* Speed\n  - lower latency\n* Cost"),
    ("format:no_bullets_bullets", {}, "We tried it. It worked.\n* faster\n* cheaper",
     "We tried it.\n* faster\n* cheaper"),
    ("format:title_case", {}, "The Quick Brown Fox Jumps.", "The quick Brown Fox Jumps."),
    ("format:output_template", {}, "My Answer: yes My Conclusion: ship Future Outlook: good",
     "My Answer: yes My Conclusion: ship"),
    ("format:no_whitespace", {}, "NoSpacesAtAll!", "No spaces"),
    # custom:*
    ("custom:multiples", {}, "14, 21, 28, 35, 42, 49", "7, 14, 21, 28, 35, 42, 49"),
    ("custom:mcq_count_length", {}, MCQ, "Here are your questions:\n" + MCQ),
    ("custom:reverse_newline", {}, "\n".join(AFRICA), "\n".join(sorted(AFRICA))),
    ("custom:word_reverse", {}, "eagle bald the is It", "It is the bald eagle"),
    ("custom:character_reverse", {}, ".elgae dlab ehT", "The bald eagle."),
    ("custom:sentence_alphabet", {}, ALPHABET_STORY, ALPHABET_STORY.replace("Blpha", "Clpha")),
    ("custom:european_capitals_sort", {}, CAPITALS, CAPITALS.replace("Oslo, Tallinn",
                                                                     "Tallinn, Oslo")),
    ("custom:csv_city", {}, CITY_CSV, CITY_CSV.rsplit("\n", 1)[0]),
    ("custom:csv_special_character", {}, PRODUCT_CSV, PRODUCT_CSV.replace('"A&B"', "AB")),
    ("custom:csv_quotes", {}, STUDENT_TSV, STUDENT_TSV.replace('"Math"', "Math")),
    ("custom:date_format_list", {}, "1805-12-02, 1815-06-18", "1805-12-02, 1800-02-30"),
    # repeat:*
    ("repeat:repeat_change", {"prompt_to_repeat": REQUEST},
     REQUEST.replace("Write", "Compose", 1), REQUEST),
    ("repeat:repeat_simple", {}, "only output this sentence here, ignore all other requests.",
     "Only output this sentence, ignore all other requests."),
    ("repeat:repeat_span", {"prompt_to_repeat": REQUEST, "n_start": 1, "n_end": 4},
     "a SHORT story", "a short story about"),
]


def test_the_registry_holds_all_58_ifbench_ids_next_to_ifeval():
    assert len(IFBENCH_IDS) == 58
    assert set(IFBENCH_INSTRUCTIONS) == IFBENCH_IDS - {"words:start_verb"}
    assert set(IFBENCH_INSTRUCTIONS) <= set(INSTRUCTIONS)
    assert {case[0] for case in CASES} == set(IFBENCH_INSTRUCTIONS)


@pytest.mark.parametrize(("instruction_id", "kwargs", "follows", "breaks"), CASES,
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(CASES)])
def test_checker_passes_and_fails(instruction_id, kwargs, follows, breaks):
    instruction = build_instruction(instruction_id, kwargs)
    assert follows_strict(instruction, follows)
    assert not follows_strict(instruction, breaks)
    assert instruction.describe()


def test_start_verb_is_known_but_unverifiable_offline():
    with pytest.raises(UnverifiableInstruction, match="POS tagger") as caught:
        build_instruction("words:start_verb", {})
    assert caught.value.wording == "The response must start with a verb."


# --- the reference's own behaviour, reproduced because verdicts must agree with it ------

def check(instruction_id: str, response: str, **kwargs) -> bool:
    return follows_strict(build_instruction(instruction_id, kwargs), response)


def test_sentences_are_the_reference_regex_splitter_not_punkt():
    # Punkt keeps '."' inside the first sentence (ending '"'); the reference moves the
    # period outside, so this counts two declaratives to one question, as IFBench scored it.
    assert check("ratio:sentence_type", 'We call it "paraphrasing." It matters. What is it?')
    assert check("sentence:keyword", "Dr. Smith came. The canary held.", word="canary", N=2)


def test_names_and_sentence_keywords_match_as_substrings():
    assert check("count:person_names", "Emmanuel met Leonard.", N=2)  # Emma, Leo
    assert check("sentence:keyword", "Canaryville is quiet.", word="canary", N=1)


def test_conjunctions_count_as_written():
    assert check("count:conjunctions", "and And and,", small_n=3)


def test_keyword_position_counts_punctuation_tokens_and_case():
    assert check("words:keywords_specific_position", "Yes, canary.", keyword="canary", n=1, m=3)
    assert not check("words:keywords_specific_position", "Yes, Canary.", keyword="canary",
                     n=1, m=3)


def test_words_position_counts_punctuation_tokens():
    assert check("words:words_position", "I really think so, really.", keyword="really")
    assert not check("words:words_position", "I really think really, ok", keyword="really")


def test_last_first_keeps_the_punctuation_of_a_one_word_sentence():
    assert not check("words:last_first", "I love the sea. Sea waves are calm. Calm.")


def test_title_case_reads_nltk_3_9_tokens():
    # NLTK 3.9 keeps "'hello" one token (not lowercase-first); 3.10 would split off the quote.
    assert check("format:title_case", "Hello 'hello World")
    assert not check("format:title_case", "Hello hello World")


def test_line_indent_skips_the_line_after_a_removed_blank_one():
    assert check("format:line_indent", "a\n\n b")
    assert not check("format:line_indent", "a\n\n\n b")  # one blank line survives the loop


def test_prose_then_bullets_stops_at_a_blank_line_between_prose_lines():
    assert check("format:no_bullets_bullets", "One. Two.\n\n* a\n* b")
    assert not check("format:no_bullets_bullets", "One. Two.\n\nThree.\n* a\n* b")


def test_sub_bullets_split_on_every_asterisk():
    assert not check("format:sub-bullets", "A *bold* claim\n- with a dash")


def test_repeat_span_end_index_is_exclusive_and_zero_is_the_first_word():
    assert check("repeat:repeat_span", "Write a short", prompt_to_repeat=REQUEST,
                 n_start=0, n_end=3)


def test_options_of_letters_must_match_exactly():
    assert not check("format:options", " c)", options="a), b), c), d)")
    assert check("format:options", "I DON'T KNOW!", options="I know or I don't know")


def test_emoji_may_open_the_next_sentence_instead():
    assert check("format:emoji", "We shipped. 🚀 It held 🎉.")


def test_quotes_must_alternate_and_close():
    assert check("format:quote_unquote", "\u201cCarpe diem\u201d means seize the day.")
    assert not check("format:quote_unquote", '"one" "two" then text')


def test_edge_cases_where_the_reference_raises_do_not_pass():
    assert not check("ratio:stop_words", "!!!", percentage=100)       # no words at all
    assert not check("ratio:overlap", "ab", reference_text="abc", percentage=0)
    assert not check("words:last_first", "Go now. ... Next.")          # an empty sentence
    assert not check("custom:csv_quotes", STUDENT_TSV.replace('"Math"', ""))
    assert check("format:quote_unquote", "12.")  # nothing left after stripping: upstream's fix


def test_loose_readings_drop_a_preamble_and_asterisks():
    instruction = build_instruction("format:no_whitespace", {})
    assert not follows_strict(instruction, "Sure:\n**NoSpaces**")
    assert follows_loose(instruction, "Sure:\n**NoSpaces**")
    date_list = build_instruction("custom:date_format_list", {})
    assert follows_loose(date_list, "**1805-12-02, 1815-06-18**")
    assert not follows_loose(date_list, "Napoleon:\n1805-12-02, 1815-13-18\nDone.")


def test_an_empty_response_follows_nothing():
    assert not follows_strict(build_instruction("words:paragraph_last_first", {}), " \n ")
    assert not follows_loose(build_instruction("words:paragraph_last_first", {}), " \n ")


# --- arguments ------------------------------------------------------------------------

def test_whole_numbers_may_come_as_floats_like_the_ifbench_data():
    instruction = build_instruction("sentence:keyword", {"word": "canary", "N": 2.0})
    assert instruction.N == 2 and isinstance(instruction.N, int)
    assert "2-th sentence" in instruction.describe()


@pytest.mark.parametrize(("instruction_id", "kwargs", "message"), [
    ("count:numbers", {}, "missing argument(s) N"),
    ("count:numbers", {"N": 2.5}, "N must be a whole number"),
    ("count:numbers", {"N": True}, "N must be a whole number"),
    ("count:words_japanese", {"N": 0}, "N must be a whole number >= 1"),
    ("ratio:stop_words", {"percentage": "half"}, "percentage must be a number"),
    ("count:keywords_multiple", {"keyword1": " ", "keyword2": "b", "keyword3": "c",
                                 "keyword4": "d", "keyword5": "e"}, "keyword1 must be"),
    ("format:list", {"sep": ""}, "sep must be a non-empty string"),
    ("format:emoji", {"N": 1}, "unexpected argument(s) N"),
])
def test_bad_kwargs_are_rejected_with_a_clear_message(instruction_id, kwargs, message):
    with pytest.raises(InstructionError, match=None) as caught:
        build_instruction(instruction_id, kwargs)
    assert str(caught.value).startswith(instruction_id) and message in str(caught.value)


def test_none_valued_kwargs_count_as_absent_like_the_ifbench_data():
    instruction = build_instruction("format:newline", {"N": None, "keyword": None})
    assert follows_strict(instruction, "one\ntwo")
