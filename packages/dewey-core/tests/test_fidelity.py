"""The engine is right on the released checkpoints' own facts, memory and device handling."""

from __future__ import annotations

import json
import weakref

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import PreTrainedTokenizerFast

from dewey_core import DeweyEncoder
from dewey_core.encoder import _DocumentPooler
from dewey_core.models.dewey import DOCUMENT_PROMPT, QUERY_PROMPT
from dewey_core.pooling import POOLING_MODES, Layout, pool
from dewey_core.runtime import run_sequences
from dewey_core.testing import tiny_dewey, tiny_encoder, tiny_stella, tiny_stella_400m
from dewey_core.windowing import WindowPolicy, plan_windows

TEXTS = ["Saffron is a spice made from crocus flowers.", "Rust is a language.", ""]


def _unit(v: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(v, dim=-1).detach().numpy()


# ---------------------------------------------------------------------- stella_en_400M_v5
def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def _new_model_reference(path, ids: list[int]) -> torch.Tensor:
    """Alibaba's GTE v1.5 forward written out from its published architecture, on the
    released key names: post-LN layers, fused qkv, rotary with fixed NTK scaling, gated GELU
    MLP whose fused projection is (up, gate)."""
    cfg = json.loads((path / "config.json").read_text())
    w = load_file(str(path / "model.safetensors"))
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    d, eps = hidden // heads, cfg["layer_norm_eps"]
    factor = cfg["rope_scaling"]["factor"]
    ln = torch.nn.functional.layer_norm
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.token_type_embeddings.weight"][0]
    x = ln(x, (hidden,), w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    inv = 1.0 / (cfg["rope_theta"] * factor) ** (torch.arange(0, d, 2).float() / d) / factor ** (2 / d)
    freqs = torch.arange(len(ids)).float()[:, None] * inv[None]
    cos, sin = torch.cat([freqs, freqs], -1).cos(), torch.cat([freqs, freqs], -1).sin()
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        qkv = x @ w[p + "attention.qkv_proj.weight"].T + w[p + "attention.qkv_proj.bias"]
        q, k, v = (t.view(len(ids), heads, d).transpose(0, 1) for t in qkv.chunk(3, dim=-1))
        q, k = q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin
        attn = torch.softmax(q @ k.transpose(1, 2) / d ** 0.5, dim=-1) @ v
        attn = attn.transpose(0, 1).reshape(len(ids), hidden)
        attn = attn @ w[p + "attention.o_proj.weight"].T + w[p + "attention.o_proj.bias"]
        x = ln(x + attn, (hidden,), w[p + "attn_ln.weight"], w[p + "attn_ln.bias"], eps)
        up, gate = (x @ w[p + "mlp.up_gate_proj.weight"].T).chunk(2, dim=-1)
        mlp = (torch.nn.functional.gelu(gate) * up) @ w[p + "mlp.down_proj.weight"].T \
            + w[p + "mlp.down_proj.bias"]
        x = ln(x + mlp, (hidden,), w[p + "mlp_ln.weight"], w[p + "mlp_ln.bias"], eps)
    return x


def test_stella_400m_loads_natively_and_matches_its_architecture(tmp_path):
    path = tiny_stella_400m(tmp_path)
    enc = DeweyEncoder.from_pretrained(path, device="cpu")
    assert enc.model.family == "stella" and type(enc.model.backbone).__name__ == "GteModel"
    assert enc.dimension == 64 and enc.model.head_dims == (16, 32, 64)
    hf = PreTrainedTokenizerFast.from_pretrained(path)
    head = load_file(str(path / "2_Dense_32" / "model.safetensors"))
    for text in TEXTS:
        ids = hf(text)["input_ids"]  # [CLS] ... [SEP]
        pooled = _new_model_reference(path, ids).mean(0)
        expected = pooled @ head["linear.weight"].T + head["linear.bias"]
        np.testing.assert_allclose(enc.encode_documents([text], dim=32)[0], _unit(expected),
                                   atol=1e-5)


def test_unsupported_gte_settings_are_refused_by_name(tmp_path):
    path = tiny_stella_400m(tmp_path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "logn_attention_scale": True}))
    with pytest.raises(ValueError, match="logn_attention_scale=True is not supported"):
        DeweyEncoder.from_pretrained(path, device="cpu")


# ---------------------------------------------------------------------- stella_en_1.5B_v5
def test_stella_1_5b_layout_and_end_of_text_token(tmp_path):
    path = tiny_stella(tmp_path)
    assert all(k.startswith("model.") for k in load_file(str(path / "model.safetensors")))
    assert json.loads((path / "tokenizer_config.json").read_text())["add_eos_token"] is True
    enc = DeweyEncoder.from_pretrained(path, device="cpu")
    hf = PreTrainedTokenizerFast.from_pretrained(path)
    eos = hf.convert_tokens_to_ids("<|endoftext|>")
    assert hf("Rust")["input_ids"][-1] != eos  # transformers 5 ignores the flag ...
    ids = hf(TEXTS[0])["input_ids"] + [eos]  # ... the authors' tokenizer appends it
    head = enc.model.heads[32]
    with torch.inference_mode():
        states = enc.model.backbone(input_ids=torch.tensor([ids]),
                                    attention_mask={"full_attention": None}).last_hidden_state[0]
        expected = head(states.mean(0))
    np.testing.assert_allclose(enc.encode_documents(TEXTS[:1], dim=32)[0], _unit(expected),
                               atol=1e-5)


# ---------------------------------------------------------------------- dewey_en_beta prompts
def test_dewey_prompts_come_from_the_checkpoint_when_it_has_them(tmp_path):
    named = {"retrieve_query": "Query: ", "retrieve_passage": "Passage: ", "sts": "Similar: "}
    enc = DeweyEncoder.from_pretrained(tiny_dewey(tmp_path / "st", prompts=named), device="cpu")
    assert (enc.model.prompts.query, enc.model.prompts.document) == ("Query: ", "Passage: ")
    np.testing.assert_allclose(enc.encode_queries(TEXTS), enc.encode_documents(TEXTS, prompt="Query: "),
                               atol=1e-6)
    np.testing.assert_allclose(enc.encode_queries(TEXTS, prompt_name="sts"),
                               enc.encode_queries(TEXTS, prompt="Similar: "), atol=1e-6)
    with pytest.raises(ValueError, match=r"unknown prompt_name 'summary'.*'sts'"):
        enc.encode_queries(TEXTS, prompt_name="summary")
    with pytest.raises(ValueError, match="not both"):
        enc.encode_queries(TEXTS, prompt="x", prompt_name="sts")
    builtin = DeweyEncoder.from_pretrained(tiny_dewey(tmp_path / "plain"), device="cpu")
    assert (builtin.model.prompts.query, builtin.model.prompts.document) == (QUERY_PROMPT,
                                                                              DOCUMENT_PROMPT)


# ---------------------------------------------------------------------- loading and devices
def test_pooling_and_default_attention_share_one_copy_of_the_weights(tmp_path):
    path = tiny_dewey(tmp_path)  # a new directory: nothing of it is loaded yet
    default = DeweyEncoder.from_pretrained(path, device="cpu")
    same = DeweyEncoder.from_pretrained(path, device="cpu", pooling="cls_add_mean", attention="sdpa")
    mean = DeweyEncoder.from_pretrained(path, device="cpu", pooling="mean")
    assert default.model.backbone is same.model.backbone is mean.model.backbone
    assert default.model.pooling == "cls_add_mean" and mean.model.pooling == "content_mean"
    a, b = default.encode_documents(TEXTS[:1]), mean.encode_documents(TEXTS[:1])
    assert float(a[0] @ b[0]) < 0.999  # the views pool differently
    assert DeweyEncoder.from_pretrained(path, device="cpu").model.pooling == "cls_add_mean"


def test_float_buffers_stay_float32_in_bfloat16(tmp_path):
    # A bfloat16 rotary inv_freq puts far positions hundreds of radians off.
    enc = DeweyEncoder.from_pretrained(tiny_dewey(tmp_path), device="cpu", dtype="bfloat16")
    buffers = dict(enc.model.backbone.named_buffers())
    assert any("inv_freq" in name for name in buffers)
    assert all(b.dtype == torch.float32 for name, b in buffers.items() if "inv_freq" in name)
    assert all(p.dtype == torch.bfloat16 for p in enc.model.backbone.parameters())


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_on_a_machine_without_it_says_so(minilm_path):
    with pytest.raises(ValueError, match=r"CUDA is not available.*device='cpu'"):
        DeweyEncoder.from_pretrained(minilm_path, device="cuda")


def test_mpnet_loads_with_eager_attention(tmp_path):
    path = tiny_encoder(tmp_path, "mpnet")
    enc = DeweyEncoder.from_pretrained(path, device="cpu")
    assert enc.model.attention.kernel == "eager"
    hf = PreTrainedTokenizerFast.from_pretrained(path)
    with torch.inference_mode():
        ids = torch.tensor([hf(TEXTS[0])["input_ids"]])
        expected = enc.model.backbone(input_ids=ids).last_hidden_state[0].mean(0)
    np.testing.assert_allclose(enc.encode_documents(TEXTS[:1])[0], _unit(expected), atol=1e-5)


# ---------------------------------------------------------------------- memory
def test_pooled_vectors_never_view_the_batch():
    states = torch.randn(512, 48)
    layout = Layout(1, 2, 0, 508, 1)
    for mode in POOLING_MODES:
        assert pool(states, mode, layout).untyped_storage().nbytes() == 48 * 4, mode


def test_late_chunk_pooler_keeps_copies_not_views(tmp_path):
    # Last-token pooling of a document longer than one window keeps its last window's last
    # state: a copy, not a view holding that window's batch.
    enc = DeweyEncoder.from_pretrained(tiny_encoder(tmp_path, "qwen2"), device="cpu", max_length=16)
    (tok,) = enc.model.tokenizer.tokenize(["word " * 40])
    windows = plan_windows(0, tok, *enc._specials(), 16, WindowPolicy())
    pooler = _DocumentPooler("lasttoken", [tok], [[(0, len(tok))]], windows)
    for i, w in enumerate(windows):
        pooler.consume(i, torch.randn(len(w.ids) + 100, 32)[:len(w.ids)])
    assert pooler.last[0].untyped_storage().nbytes() == 32 * 4
    assert pooler.cls_sum[0].untyped_storage().nbytes() == 32 * 4


def test_out_of_memory_retry_frees_the_failed_batch_first():
    failed: list[weakref.ref] = []
    consumed: list[int] = []

    def forward(batch):
        assert all(ref() is None for ref in failed), "the failed batch is still alive"
        if batch.input_ids.shape[0] > 1:
            failed.append(weakref.ref(batch.input_ids))
            raise torch.cuda.OutOfMemoryError("simulated")
        return batch.input_ids[..., None].float().expand(-1, -1, 4)

    sequences = [[i + 1] * (i % 5 + 1) for i in range(9)]
    run_sequences(forward, sequences, lambda i, s: consumed.append(i), pad_id=0,
                  device=torch.device("cpu"), token_budget=10_000)
    assert sorted(consumed) == list(range(9)) and failed


def test_gte_v15_folder_without_dense_heads_outputs_hidden_states(tmp_path):
    # gte-{base,large}-en-v1.5: the same architecture, CLS pooling, no Dense heads.
    path = tiny_stella_400m(tmp_path)
    for folder in path.glob("2_Dense_*"):
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    modules = json.loads((path / "modules.json").read_text())[:2]
    (path / "modules.json").write_text(json.dumps(modules))
    pooling = json.loads((path / "1_Pooling" / "config.json").read_text())
    pooling.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    (path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    enc = DeweyEncoder.from_pretrained(path, device="cpu")
    assert enc.dimension == 32 and enc.model.pooling == "cls"
    ids = PreTrainedTokenizerFast.from_pretrained(path)(TEXTS[1])["input_ids"]
    np.testing.assert_allclose(enc.encode_documents(TEXTS[1:2])[0],
                               _unit(_new_model_reference(path, ids)[0]), atol=1e-5)


def test_t5_checkpoints_load_their_encoder(tmp_path):
    from transformers import T5Config, T5EncoderModel, T5Model

    from dewey_core.testing.tokenizers import bert_tokenizer, write_json

    tok = bert_tokenizer(tmp_path)
    T5Model(T5Config(vocab_size=tok.get_vocab_size(), d_model=32, d_kv=8, d_ff=64, num_layers=2,
                     num_heads=4, decoder_start_token_id=0)).save_pretrained(tmp_path)
    write_json(tmp_path / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}])
    (tmp_path / "1_Pooling").mkdir()
    write_json(tmp_path / "1_Pooling" / "config.json", {"pooling_mode_mean_tokens": True})
    enc = DeweyEncoder.from_pretrained(tmp_path, device="cpu")
    assert isinstance(enc.model.backbone, T5EncoderModel)
    assert enc.model.packing == "none"  # its forward takes no position_ids
    with pytest.raises(ValueError, match="cannot run packed batches"):
        DeweyEncoder.from_pretrained(tmp_path, device="cpu", packed=True)
    ids = torch.tensor([PreTrainedTokenizerFast.from_pretrained(tmp_path)(TEXTS[0])["input_ids"]])
    with torch.inference_mode():
        expected = enc.model.backbone(input_ids=ids).last_hidden_state[0].mean(0)
    np.testing.assert_allclose(enc.encode_documents(TEXTS[:1])[0], _unit(expected), atol=1e-5)
