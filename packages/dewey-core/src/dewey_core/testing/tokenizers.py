"""Small byte-level BPE tokenizers trained offline, saved as ``tokenizer.json`` + config."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

# Training text: enough English for a few hundred merges; any other text still tokenises
# (byte-level alphabet), just into more pieces.
CORPUS = [
    "Saffron is a spice made from the dried stigmas of a crocus flower.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Python is a programming language; its reference manual describes the syntax.",
    "A document is split into chunks, and every chunk is embedded with its context.",
    "Which spice is the most expensive in the world? Answer the question.",
    "Candidate document: the town's economy depends on farming and tourism.",
    "Images and text live in one space: a red square, a blue circle, a green tree.",
    "Rust is a language for systems programming with memory safety guarantees.",
]


def train_bpe(vocab_size: int, special_tokens: list[str]) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special_tokens,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer)
    return tok


def modernbert_tokenizer(path: Path, prompt_tokens: list[str]) -> Tokenizer:
    """ModernBERT-style: ``[CLS] text [SEP]``, with the prompt markers as added tokens."""
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    tok = train_bpe(400, specials)
    tok.add_tokens(prompt_tokens)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.save(str(path / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "cls_token": "[CLS]",
              "sep_token": "[SEP]", "pad_token": "[PAD]", "mask_token": "[MASK]",
              "unk_token": "[UNK]", "bos_token": "[CLS]", "eos_token": "[SEP]",
              "model_max_length": 131072}
    write_json(path / "tokenizer_config.json", config)
    write_json(path / "special_tokens_map.json",
               {k: v for k, v in config.items() if k.endswith("_token")})
    return tok


def qwen_tokenizer(path: Path, extra_special: list[str]) -> Tokenizer:
    """Qwen2-style: no special tokens added around text; ``<|endoftext|>`` pads."""
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *extra_special]
    tok = train_bpe(400, specials)
    tok.save(str(path / "tokenizer.json"))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "<|endoftext|>",
              "eos_token": "<|endoftext|>", "bos_token": None, "unk_token": None,
              "model_max_length": 131072,
              "additional_special_tokens": ["<|im_start|>", "<|im_end|>", *extra_special]}
    write_json(path / "tokenizer_config.json", config)
    write_json(path / "added_tokens.json", {t: tok.token_to_id(t) for t in specials})
    write_json(path / "special_tokens_map.json",
               {"pad_token": "<|endoftext|>", "eos_token": "<|endoftext|>"})
    return tok


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
