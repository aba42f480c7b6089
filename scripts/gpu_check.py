"""Measurements behind ``scripts/gpu_check.sh``; writes a Markdown report.

All models have random weights (tiny tokenizer, released layer sizes): the numbers are speed
and memory, never quality. Run through the script, or directly:
``PYTHONPATH=packages/dewey-core/src python scripts/gpu_check.py --out results/gpu_check.md``.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dewey_core import DeweyEncoder
from dewey_core.loading import clear_model_cache
from dewey_core.testing import tiny_dewey, tiny_stella

WORDS = ["saffron", "spice", "crocus", "flower", "document", "chunk", "context", "embedding",
         "python", "language", "reference", "manual", "systems", "memory", "safety", "town",
         "economy", "river", "bank", "quick", "brown", "fox"]


def text_of(enc: DeweyEncoder, n_tokens: int, rng: random.Random) -> str:
    """A text of about ``n_tokens`` tokens under ``enc``'s tokenizer."""
    words = [rng.choice(WORDS) for _ in range(max(n_tokens, 1))]
    text = " ".join(words)
    per_word = max(enc.count_tokens([text])[0] / len(words), 1e-6)
    words = words[: max(int(n_tokens / per_word), 1)]
    return " ".join(words)


def timed(fn):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - start, torch.cuda.max_memory_allocated() / 2**30


def kernels() -> list[tuple[str, bool]]:
    """(attention, packed) runs to compare: padded SDPA, torch's varlen kernels packed, and the
    flash-attn package packed where it is installed."""
    from dewey_core.attention import flash_attention_available

    runs = [("sdpa", False), ("varlen", True)]
    if flash_attention_available(torch.device("cuda")):
        runs.append(("flash_attention_2", True))
    return runs


def throughput(path: Path, texts: list[str], label: str, lines: list[str]) -> None:
    rows, vectors, rate = [], {}, {}
    for attention, packed in kernels():
        enc = DeweyEncoder.from_pretrained(path, device="cuda", attention=attention, packed=packed)
        tokens = sum(enc.count_tokens(texts))
        enc.encode_documents(texts[:64])  # warm-up
        vectors[attention], seconds, peak = timed(lambda enc=enc: enc.encode_documents(texts))
        rate[attention] = tokens / seconds
        rows.append(f"| {label} | {attention}, {'packed' if packed else 'padded'} "
                    f"| {len(texts)} | {tokens:,} | {seconds:.2f} | {tokens / seconds:,.0f} | {peak:.1f} |")
        clear_model_cache()
        torch.cuda.empty_cache()
    lines += rows
    for attention in list(vectors)[1:]:
        cos = float((vectors["sdpa"] * vectors[attention]).sum(1).min())
        lines.append(f"| {label} | {attention} vs padded sdpa: min cosine (bf16) {cos:.6f}, "
                     f"speed {rate[attention] / rate['sdpa']:.2f}x | | | | | |")


def long_document(path: Path, n_tokens: int, lines: list[str], attention: str | None = None) -> None:
    enc = DeweyEncoder.from_pretrained(path, device="cuda", attention=attention)
    text = text_of(enc, n_tokens, random.Random(n_tokens))
    actual = enc.count_tokens([text])[0]
    try:
        enc.late_chunk([text[:2000]], chunk_size=256)  # warm-up
        docs, seconds, peak = timed(lambda: enc.late_chunk([text], chunk_size=256))
        lines.append(f"| {actual:,} | {docs[0].num_windows} | {len(docs[0].chunks)} | {seconds:.2f} "
                     f"| {peak:.1f} | {enc.model.attention.kernel} | ok |")
    except torch.cuda.OutOfMemoryError as exc:
        lines.append(f"| {actual:,} | | | | | {attention or enc.model.packing} | CUDA out of memory: "
                     f"{str(exc).splitlines()[0][:120]} |")
    except Exception as exc:
        lines.append(f"| {actual:,} | | | | | {attention or enc.model.packing} | "
                     f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''} |")
    finally:
        torch.cuda.empty_cache()


def attention_agreement(path: Path, rng: random.Random) -> float:
    """Late-chunk one 32K-token document with torch's varlen kernels and with flex attention."""
    out = []
    for attention in ("varlen", "flex_attention"):
        enc = DeweyEncoder.from_pretrained(path, device="cuda", attention=attention)
        text = text_of(enc, 32_768, random.Random(7))
        try:
            out.append(enc.late_chunk([text], chunk_size=256)[0].chunk_embeddings)
        except Exception:
            return float("nan")
        finally:
            clear_model_cache()
            torch.cuda.empty_cache()
    return float((out[0] * out[1]).sum(1).min())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/gpu_check.md")
    parser.add_argument("--flash-note", default="")
    parser.add_argument("--tests-log", default=None)
    parser.add_argument("--tests-status", default=None)
    parser.add_argument("--long-only", action="store_true", help="only the long-document section")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check needs a CUDA GPU")
    import transformers

    from dewey_core.attention import flash_attention_available

    memory = torch.cuda.get_device_properties(0).total_memory / 2**30
    flash = "available" if flash_attention_available(torch.device("cuda")) else "not available"
    lines = ["# dewey-core GPU check", "",
             f"- GPU: {torch.cuda.get_device_name()} ({memory:.0f} GiB)",
             f"- torch {torch.__version__}, transformers {transformers.__version__}",
             f"- flash-attn: {flash}" + (f" ({args.flash_note})" if args.flash_note else ""),
             f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}", ""]
    if args.tests_log and Path(args.tests_log).is_file():
        summary = Path(args.tests_log).read_text().strip().splitlines()[-1:]
        lines += [f"GPU tests (`tests/test_gpu.py`, exit status {args.tests_status}): "
                  f"`{summary[0] if summary else 'no output'}`", ""]
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        dewey = tiny_dewey(Path(tmp) / "dewey", released_size=True, init_device="cuda",
                           dtype=torch.bfloat16)
        probe = DeweyEncoder.from_pretrained(dewey, device="cuda")
        lines += ["## Throughput, random weights, bf16, default token budget", "",
                  "| model | batches | texts | tokens | seconds | tokens/s | peak GiB |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        mixed = [text_of(probe, int(n), rng) for n in np.clip(rng_lengths(rng, 2000, 300), 16, 2000)]
        if not args.long_only:
            throughput(dewey, mixed, "dewey_en_beta size (395M), mixed 16-2000 tokens", lines)
            write(lines, args.out, echo=False)
        clear_model_cache()
        torch.cuda.empty_cache()

        lines += ["", "## One long document (late chunking, 256-token chunks), dewey_en_beta size", "",
                  "| tokens | windows | chunks | seconds | peak GiB | attention | result |",
                  "| ---: | ---: | ---: | ---: | ---: | --- | --- |"]
        for attention in [k for k, _ in kernels() if k != "sdpa"]:
            for n in (32_768, 131_000):
                long_document(dewey, n, lines, attention=attention)
                write(lines, args.out, echo=False)
            clear_model_cache()
            torch.cuda.empty_cache()
        del probe

        if not args.long_only:
            qwen_throughput(Path(tmp) / "qwen", rng, lines)
            write(lines, args.out, echo=False)
        # Flex attention last: it compiles its kernels first (slow), and the rest must not wait.
        lines += ["", "## Flex attention (compiled), one long document", "",
                  "| tokens | windows | chunks | seconds | peak GiB | attention | result |",
                  "| ---: | ---: | ---: | ---: | ---: | --- | --- |"]
        for n in (32_768, 131_000):
            long_document(dewey, n, lines, attention="flex_attention")
            write(lines, args.out, echo=False)
        clear_model_cache()
        lines += ["", f"flex vs varlen attention, 32K-token document, min chunk cosine: "
                      f"{attention_agreement(dewey, rng):.6f}"]
    return write(lines, args.out)


def qwen_throughput(folder: Path, rng: random.Random, lines: list[str]) -> None:
    qwen = tiny_stella(folder, released_size=True, head_dims=(1024,), default_dim=1024,
                       init_device="cuda", dtype=torch.bfloat16)
    probe = DeweyEncoder.from_pretrained(qwen, device="cuda")
    short = [text_of(probe, int(n), rng) for n in np.clip(rng_lengths(rng, 4000, 40), 8, 128)]
    lines += ["", "## Jasper-sized text model (bidirectional Qwen2-1.5B, random weights), short texts",
              "", "| model | batches | texts | tokens | seconds | tokens/s | peak GiB |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    throughput(qwen, short, "Qwen2-1.5B, 8-128 tokens", lines)
    clear_model_cache()
    torch.cuda.empty_cache()


def write(lines: list[str], out: str, echo: bool = True) -> int:
    """Write the report so far (after each section, so a run cut short keeps what it measured)."""
    report = "\n".join(lines) + "\n"
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(report)
    if echo:
        print(report)
    return 0


def rng_lengths(rng: random.Random, n: int, mean: float) -> np.ndarray:
    """Log-normal lengths around ``mean`` tokens: many short texts, a few long ones."""
    return np.array([rng.lognormvariate(np.log(mean), 0.8) for _ in range(n)])


if __name__ == "__main__":
    raise SystemExit(main())
