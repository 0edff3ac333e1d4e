"""Tiny transformers models built from configs and saved to a directory (no hub download).

Random weights, a few hundred kilobytes each, CPU-fast. Tests use them to run the real
model code paths: tokenizer, chat template, ``generate``, sequence classification.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""A minimal chat template; its ``<|role|>`` markers show in a rendered prompt."""

END_OF_TEXT = "<|endoftext|>"
CHAT_MARKERS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")
VERDICT_TOKENS = ("VERDICT: PASS", "VERDICT: FAIL", "[[A]]", "[[B]]", "[[C]]")
"""Whole verdicts as single tokens, so a model can be forced to emit one."""

WORDS = [
    "the", "a", "an", "is", "are", "was", "of", "to", "and", "in", "on", "for", "with",
    "what", "which", "who", "how", "why", "when", "question", "answer", "good", "bad",
    "helpful", "harmful", "paris", "london", "capital", "france", "england", "weather",
    "sunny", "rain", "cat", "dog", "yes", "no", "please", "thanks", "hello", "world",
]


def _byte_level_tokenizer(chat_template: str | None, verdict_tokens: bool):
    """A GPT-2-style byte-level tokenizer with no merges: every text round-trips."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: index for index, symbol in enumerate(alphabet)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token=END_OF_TEXT, pad_token=END_OF_TEXT,
        bos_token=END_OF_TEXT, unk_token=END_OF_TEXT,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(CHAT_MARKERS)})
    if verdict_tokens:
        tokenizer.add_tokens(list(VERDICT_TOKENS))
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def build_causal_lm(
    directory: str | Path,
    *,
    chat_template: str | None = CHAT_TEMPLATE,
    forced_text: str | None = None,
    seed: int = 0,
) -> Path:
    """Save a tiny GPT-2 and its tokenizer to ``directory``; returns the directory.

    With ``forced_text`` (one of VERDICT_TOKENS), greedy decoding emits that token at
    every step whatever the prompt: the final layer norm outputs a constant vector and
    only that token's output row reads it. Without it the verdicts are not single tokens,
    so the random model practically cannot write one.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    directory = Path(directory)
    tokenizer = _byte_level_tokenizer(chat_template, verdict_tokens=forced_text is not None)
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=512, n_embd=32, n_layer=2, n_head=2,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    model = GPT2LMHeadModel(config).eval()
    if forced_text is not None:
        _force_token(model, tokenizer.convert_tokens_to_ids(forced_text))
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def _force_token(model, token_id: int) -> None:
    import torch

    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[token_id, 0] = 10.0


def _wordpiece_tokenizer():
    """A BERT-style WordPiece tokenizer over a small vocabulary, with pair templates."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = list("abcdefghijklmnopqrstuvwxyz0123456789?!.,'")
    tokens = list(dict.fromkeys(specials + WORDS + pieces + [f"##{c}" for c in pieces]))
    vocab = {token: index for index, token in enumerate(tokens)}
    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]",
    )


def build_sequence_classifier(directory: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny BERT reward model (one logit) and a WordPiece tokenizer to ``directory``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    directory = Path(directory)
    tokenizer = _wordpiece_tokenizer()
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, num_labels=1, initializer_range=0.5,
        pad_token_id=tokenizer.pad_token_id,
    )
    BertForSequenceClassification(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
