"""DeweyTextEmbedder and DeweyDocumentEmbedder: Haystack's embedder test matrix."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from haystack import Document
from haystack.utils import ComponentDevice

from haystack_dewey import DeweyDocumentEmbedder, DeweyTextEmbedder
from haystack_dewey import _common as common_module

CPU = ComponentDevice.from_str("cpu")


def count_loads(monkeypatch) -> list[str]:
    """Record every model load done by the components (the real load still happens)."""
    calls: list[str] = []
    real = common_module.load_encoder

    def recording(model, *args, **kwargs):
        calls.append(model)
        return real(model, *args, **kwargs)

    monkeypatch.setattr(common_module, "load_encoder", recording)
    return calls


# ---------------------------------------------------------------------------- text embedder
class TestDeweyTextEmbedder:
    def test_init_defaults(self):
        embedder = DeweyTextEmbedder()
        assert embedder.model == "infgrad/dewey_en_beta"
        assert embedder.device == ComponentDevice.resolve_device(None)
        assert (embedder.dtype, embedder.max_length, embedder.token_budget) == (None, None, None)
        assert embedder.model_options is None
        assert (embedder.prefix, embedder.suffix, embedder.prompt, embedder.dim) == ("", "", None, None)
        assert embedder.progress_bar is True  # as SentenceTransformersTextEmbedder
        assert embedder._encoder is None  # nothing loaded before warm_up

    def test_init_with_parameters(self):
        embedder = DeweyTextEmbedder(model="some/model", device="cpu", dtype="float32", max_length=128,
                                     token_budget=512, model_options={"pooling": "mean"}, prefix="q: ",
                                     suffix="?", prompt="", dim=64, progress_bar=True)
        assert embedder.model == "some/model"
        assert embedder.device == CPU
        assert (embedder.dtype, embedder.max_length, embedder.token_budget) == ("float32", 128, 512)
        assert embedder.model_options == {"pooling": "mean"}
        assert (embedder.prefix, embedder.suffix, embedder.prompt, embedder.dim) == ("q: ", "?", "", 64)
        assert embedder.progress_bar is True

    def test_init_refuses_a_bad_device(self):
        with pytest.raises(TypeError, match="device must be a ComponentDevice"):
            DeweyTextEmbedder(device=0)

    def test_to_dict(self):
        assert DeweyTextEmbedder(device=CPU).to_dict() == {
            "type": "haystack_dewey.embedders.DeweyTextEmbedder",
            "init_parameters": {
                "model": "infgrad/dewey_en_beta",
                "device": {"type": "single", "device": "cpu"},
                "dtype": None,
                "max_length": None,
                "token_budget": None,
                "batch_size": None,
                "model_options": None,
                "model_kwargs": None,
                "token": {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False},
                "local_files_only": False,
                "trust_remote_code": False,
                "api_base_url": None,
                "api_key": None,
                "prefix": "",
                "suffix": "",
                "prompt": None,
                "dim": None,
                "progress_bar": True,
            },
        }

    def test_to_dict_with_parameters(self):
        embedder = DeweyTextEmbedder(model="m", device="cpu", dtype="bfloat16", max_length=64,
                                     token_budget=1024, model_options={"pooling": "cls"},
                                     prefix="p", suffix="s", prompt="Query: ", dim=32, progress_bar=True)
        assert embedder.to_dict() == {
            "type": "haystack_dewey.embedders.DeweyTextEmbedder",
            "init_parameters": {
                "model": "m",
                "device": {"type": "single", "device": "cpu"},
                "dtype": "bfloat16",
                "max_length": 64,
                "token_budget": 1024,
                "batch_size": None,
                "model_options": {"pooling": "cls"},
                "model_kwargs": None,
                "token": {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False},
                "local_files_only": False,
                "trust_remote_code": False,
                "api_base_url": None,
                "api_key": None,
                "prefix": "p",
                "suffix": "s",
                "prompt": "Query: ",
                "dim": 32,
                "progress_bar": True,
            },
        }

    def test_from_dict(self):
        data = {
            "type": "haystack_dewey.embedders.DeweyTextEmbedder",
            "init_parameters": {"model": "m", "device": {"type": "single", "device": "cpu"},
                                "dtype": "float32", "max_length": 64, "token_budget": 256, "batch_size": 8,
                                "model_options": None, "model_kwargs": {"torch_dtype": "float32"},
                                "token": {"type": "env_var", "env_vars": ["MY_TOKEN"], "strict": False},
                                "local_files_only": True, "trust_remote_code": False,
                                "api_base_url": None, "api_key": None,
                                "prefix": "p", "suffix": "s", "prompt": "", "dim": 16, "progress_bar": True},
        }
        embedder = DeweyTextEmbedder.from_dict(data)
        assert embedder.model == "m" and embedder.device == CPU
        assert (embedder.dtype, embedder.max_length, embedder.token_budget, embedder.batch_size) == \
            ("float32", 64, 256, 8)
        assert (embedder.prefix, embedder.suffix, embedder.prompt, embedder.dim) == ("p", "s", "", 16)
        assert embedder.progress_bar is True
        assert embedder.to_dict() == data  # round trip, and `data` itself left intact

    def test_warm_up_loads_once(self, minilm_path, monkeypatch):
        loads = count_loads(monkeypatch)
        embedder = DeweyTextEmbedder(model=minilm_path, device="cpu")
        embedder.warm_up()
        encoder = embedder._encoder
        embedder.warm_up()
        embedder.run("a question")
        assert loads == [minilm_path]
        assert embedder._encoder is encoder

    def test_run(self, minilm_path, minilm):
        embedder = DeweyTextEmbedder(model=minilm_path, device="cpu")
        embedding = embedder.run("What does the yield keyword do?")["embedding"]
        assert isinstance(embedding, list) and all(isinstance(x, float) for x in embedding)
        assert len(embedding) == 384
        expected = minilm.encode_queries(["What does the yield keyword do?"])[0]
        np.testing.assert_allclose(embedding, expected, atol=1e-6)

    def test_run_ranks_the_relevant_text_first(self, minilm_path, minilm):
        embedder = DeweyTextEmbedder(model=minilm_path, device="cpu")
        query = np.array(embedder.run("Which spice comes from crocus flowers?")["embedding"])
        docs = minilm.encode_documents(["Rust is a systems programming language.",
                                        "Saffron is a spice made from the stigmas of crocus flowers."])
        assert int(np.argmax(docs @ query)) == 1

    def test_run_applies_prefix_suffix_prompt_and_dim(self, minilm_path, minilm):
        embedder = DeweyTextEmbedder(model=minilm_path, device="cpu", prefix="query: ", suffix=" ?",
                                     prompt="Find: ", dim=128)
        embedding = embedder.run("saffron")["embedding"]
        assert len(embedding) == 128
        expected = minilm.encode_queries(["query: saffron ?"], 128, prompt="Find: ")[0]
        np.testing.assert_allclose(embedding, expected, atol=1e-6)
        assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)

    def test_run_async(self, minilm_path):
        embedder = DeweyTextEmbedder(model=minilm_path, device="cpu")
        expected = embedder.run("hello")["embedding"]
        assert asyncio.run(embedder.run_async("hello"))["embedding"] == pytest.approx(expected, abs=1e-6)

    @pytest.mark.parametrize("wrong", [[Document(content="x")], ["text"], 42])
    def test_run_wrong_input_type(self, wrong):
        embedder = DeweyTextEmbedder(device="cpu")
        with pytest.raises(TypeError, match=r"expects a string.*use DeweyDocumentEmbedder"):
            embedder.run(wrong)
        assert embedder._encoder is None  # refused before any loading


# ---------------------------------------------------------------------------- document embedder
class TestDeweyDocumentEmbedder:
    def test_init_defaults(self):
        embedder = DeweyDocumentEmbedder()
        assert embedder.model == "infgrad/dewey_en_beta"
        assert embedder.device == ComponentDevice.resolve_device(None)
        assert (embedder.dtype, embedder.max_length, embedder.token_budget) == (None, None, None)
        assert (embedder.prefix, embedder.suffix, embedder.prompt, embedder.dim) == ("", "", None, None)
        assert embedder.meta_fields_to_embed == []
        assert embedder.embedding_separator == "\n"
        assert embedder.progress_bar is True
        assert embedder._encoder is None

    def test_init_with_parameters(self):
        embedder = DeweyDocumentEmbedder(model="m", device="cpu", dtype="float32", token_budget=256,
                                         prefix="a", suffix="b", prompt="", dim=8,
                                         meta_fields_to_embed=["title"], embedding_separator=" | ",
                                         progress_bar=False)
        assert (embedder.model, embedder.device, embedder.dtype, embedder.token_budget) == \
            ("m", CPU, "float32", 256)
        assert (embedder.prefix, embedder.suffix, embedder.prompt, embedder.dim) == ("a", "b", "", 8)
        assert embedder.meta_fields_to_embed == ["title"]
        assert embedder.embedding_separator == " | "
        assert embedder.progress_bar is False

    def test_to_dict(self):
        assert DeweyDocumentEmbedder(device="cpu", meta_fields_to_embed=["title"]).to_dict() == {
            "type": "haystack_dewey.embedders.DeweyDocumentEmbedder",
            "init_parameters": {
                "model": "infgrad/dewey_en_beta",
                "device": {"type": "single", "device": "cpu"},
                "dtype": None,
                "max_length": None,
                "token_budget": None,
                "batch_size": None,
                "model_options": None,
                "model_kwargs": None,
                "token": {"type": "env_var", "env_vars": ["HF_API_TOKEN", "HF_TOKEN"], "strict": False},
                "local_files_only": False,
                "trust_remote_code": False,
                "api_base_url": None,
                "api_key": None,
                "prefix": "",
                "suffix": "",
                "prompt": None,
                "dim": None,
                "meta_fields_to_embed": ["title"],
                "embedding_separator": "\n",
                "progress_bar": True,
            },
        }

    def test_from_dict(self):
        data = DeweyDocumentEmbedder(model="m", device="cpu", dim=8, meta_fields_to_embed=["a", "b"],
                                     embedding_separator=" ", progress_bar=False).to_dict()
        embedder = DeweyDocumentEmbedder.from_dict(data)
        assert (embedder.model, embedder.device, embedder.dim) == ("m", CPU, 8)
        assert embedder.meta_fields_to_embed == ["a", "b"] and embedder.embedding_separator == " "
        assert embedder.progress_bar is False
        assert embedder.to_dict() == data

    def test_warm_up_loads_once(self, minilm_path, monkeypatch):
        loads = count_loads(monkeypatch)
        embedder = DeweyDocumentEmbedder(model=minilm_path, device="cpu", progress_bar=False)
        embedder.warm_up()
        encoder = embedder._encoder
        embedder.warm_up()
        embedder.run([Document(content="text")])
        assert loads == [minilm_path] and embedder._encoder is encoder

    def test_run(self, minilm_path, minilm):
        docs = [Document(content="Saffron is a spice.", meta={"title": "Spices"}),
                Document(content="Rust is a language.", meta={"title": None}),
                Document(content="No title here.")]
        before = [(d.id, dict(d.meta), d.embedding) for d in docs]
        embedder = DeweyDocumentEmbedder(model=minilm_path, device="cpu", meta_fields_to_embed=["title"],
                                         embedding_separator=" | ", progress_bar=False)
        out = embedder.run(docs)["documents"]
        # Haystack's text convention: non-missing metadata values, then the content.
        expected = minilm.encode_documents(["Spices | Saffron is a spice.", "Rust is a language.",
                                            "No title here."])
        assert [d.id for d in out] == [d.id for d in docs]
        assert [d.content for d in out] == [d.content for d in docs]
        np.testing.assert_allclose(np.array([d.embedding for d in out]), expected, atol=1e-6)
        assert [(d.id, d.meta, d.embedding) for d in docs] == before  # inputs untouched
        assert all(o is not d for o, d in zip(out, docs, strict=True))

    def test_run_with_dim_prefix_and_empty_list(self, minilm_path, minilm):
        embedder = DeweyDocumentEmbedder(model=minilm_path, device="cpu", dim=64, prefix="passage: ",
                                         progress_bar=False)
        out = embedder.run([Document(content="saffron")])["documents"]
        np.testing.assert_allclose(out[0].embedding, minilm.encode_documents(["passage: saffron"], 64)[0],
                                   atol=1e-6)
        assert embedder.run([])["documents"] == []

    def test_run_async(self, minilm_path):
        embedder = DeweyDocumentEmbedder(model=minilm_path, device="cpu", progress_bar=False)
        docs = [Document(content="hello"), Document(content="world")]
        sync = [d.embedding for d in embedder.run(docs)["documents"]]
        result = asyncio.run(embedder.run_async(docs))["documents"]
        np.testing.assert_allclose([d.embedding for d in result], sync, atol=1e-6)

    @pytest.mark.parametrize("wrong", ["a string", Document(content="x"), ["text", "text"], [1]])
    def test_run_wrong_input_type(self, wrong):
        embedder = DeweyDocumentEmbedder(device="cpu")
        with pytest.raises(TypeError, match=r"list of Documents.*use DeweyTextEmbedder"):
            embedder.run(wrong)
        assert embedder._encoder is None


def test_batch_size_reaches_the_encoder_and_keeps_results(minilm_path):
    docs = [Document(content=f"Document number {i} about {topic}.")
            for i, topic in enumerate(["saffron", "rivers", "python", "bridges", "tea"])]
    capped = DeweyDocumentEmbedder(model=minilm_path, device="cpu", batch_size=2, progress_bar=False)
    plain = DeweyDocumentEmbedder(model=minilm_path, device="cpu", progress_bar=False)
    capped.warm_up()
    assert capped._encoder.batch_size == 2
    a = np.array([d.embedding for d in capped.run(docs)["documents"]])
    b = np.array([d.embedding for d in plain.run(docs)["documents"]])
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_sentence_transformers_settings_are_accepted(minilm_path, minilm, monkeypatch):
    """What a SentenceTransformers embedder is configured with works here too."""
    from haystack.utils import Secret

    monkeypatch.setenv("MY_HF_TOKEN", "hf_secret")
    hub = {}
    real = common_module.load_encoder
    monkeypatch.setattr(common_module, "load_encoder",
                        lambda model, *a, **kw: hub.update(kw) or real(model, *a, **kw))
    embedder = DeweyTextEmbedder(model=minilm_path, device="cpu", token=Secret.from_env_var("MY_HF_TOKEN"),
                                 local_files_only=True, model_kwargs={"torch_dtype": "float32"},
                                 truncate_dim=64, normalize_embeddings=True, progress_bar=False)
    vector = embedder.run("spice")["embedding"]
    assert len(vector) == 64 and hub == {"token": "hf_secret", "local_files_only": True}
    np.testing.assert_allclose(vector, minilm.encode_queries(["spice"], dim=64)[0], atol=1e-5)
    assert embedder.to_dict()["init_parameters"]["token"] == {"type": "env_var", "env_vars": ["MY_HF_TOKEN"],
                                                              "strict": True}
    documents = DeweyDocumentEmbedder(model=minilm_path, device="cpu", truncate_dim=32, progress_bar=False)
    assert len(documents.run([Document(content="x")])["documents"][0].embedding) == 32


@pytest.mark.parametrize("component", [DeweyTextEmbedder, DeweyDocumentEmbedder])
def test_what_sentence_transformers_would_do_differently_is_refused(component):
    with pytest.raises(ValueError, match="normalize_embeddings=False is not supported"):
        component(normalize_embeddings=False)
    with pytest.raises(ValueError, match=r"model_kwargs: unsupported key.*quantization_config"):
        component(model_kwargs={"quantization_config": {}})
    with pytest.raises(TypeError, match="token must be a haystack Secret"):
        component(token="hf_plain_string")


def test_a_torch_dtype_in_model_kwargs_survives_a_saved_pipeline(minilm_path, minilm):
    """SentenceTransformers' components take ``model_kwargs={"torch_dtype": torch.float32}`` and
    save it as ``"torch.float32"``; so do these."""
    import torch
    from haystack import Pipeline

    pipeline = Pipeline()
    pipeline.add_component("embedder", DeweyTextEmbedder(model=minilm_path, device="cpu", progress_bar=False,
                                                         model_kwargs={"torch_dtype": torch.float32}))
    saved = pipeline.dumps()
    assert "torch_dtype: torch.float32" in saved
    loaded = Pipeline.loads(saved, allowed_modules=["haystack_dewey"])
    assert loaded.get_component("embedder").model_kwargs == {"torch_dtype": torch.float32}
    np.testing.assert_allclose(loaded.run({"embedder": {"text": "spice"}})["embedder"]["embedding"],
                               minilm.encode_queries(["spice"])[0], atol=1e-5)


def test_from_dict_leaves_the_callers_dict_as_it_was(monkeypatch):
    from haystack.utils import Secret

    monkeypatch.setenv("DEWEY_API_KEY", "k")
    data = DeweyTextEmbedder(api_base_url="http://localhost:1", device="cpu",
                             api_key=Secret.from_env_var("DEWEY_API_KEY")).to_dict()
    first, second = DeweyTextEmbedder.from_dict(data), DeweyTextEmbedder.from_dict(data)
    assert first.to_dict() == second.to_dict() == data
    assert data["init_parameters"]["api_key"] == {"type": "env_var", "env_vars": ["DEWEY_API_KEY"],
                                                  "strict": True}
