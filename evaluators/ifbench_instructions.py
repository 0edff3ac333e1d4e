"""IFBench's 58 out-of-distribution constraints (Pyatkin et al., NeurIPS 2025 D&B), by id.

Ids and kwargs are IFBench's own (``count:keywords_multiple`` with ``keyword1``..``keyword5``,
...). The checkers port allenai/IFBench as of the version that produced its published
verdicts (``eval/eval_results_*.jsonl``; the checkers of commit e44f1c7, Dec 2025):
sentences by the regular-expression splitter, substring keyword and name matching,
word-index spans. Later upstream revisions switched to Punkt sentences and changed a dozen
checkers; they no longer reproduce the published verdicts, so they are not followed.
Where the published version raises (an empty sentence, no words), the verdict is the one
upstream's later fix gives, False. Deliberate differences, all on arguments the data never
holds: the reference draws a random value for a missing or zero argument, here a missing
argument is an error and ``repeat:repeat_span``'s ``n_start`` 0 is the first word.

``words:start_verb`` is registered as unverifiable: it needs NLTK's averaged-perceptron
POS tagger, which the reference downloads at run time and no offline package carries, so
it is reported unchecked and never fails a span. ``ratio:stop_words`` uses NLTK's English
stopword list, shipped with this package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from canarytrace.evaluators import ifbench_counts, ifbench_formats, ifbench_tasks, ifbench_words
from canarytrace.evaluators.instruction_base import Instruction


@dataclass(frozen=True)
class Unverifiable:
    """An instruction known by id that is not checked offline: its wording, and why not."""

    wording: str
    reason: str


UNVERIFIABLE: Mapping[str, Unverifiable] = {
    "words:start_verb": Unverifiable(
        wording="The response must start with a verb.",
        reason="it needs NLTK's averaged-perceptron POS tagger, which the IFBench reference "
               "downloads at run time and no offline package carries"),
}
"""IFBench ids known but not checked offline."""

IFBENCH_INSTRUCTIONS: dict[str, type[Instruction]] = {
    checker.id: checker
    for module in (ifbench_counts, ifbench_words, ifbench_formats, ifbench_tasks)
    for checker in module.CHECKERS
}

IFBENCH_IDS: frozenset[str] = frozenset(IFBENCH_INSTRUCTIONS) | frozenset(UNVERIFIABLE)
"""All 58 IFBench instruction ids."""
