"""The two training objectives: what one step draws and which losses it returns.

Both return a dict of named loss terms (summed by the trainer, logged one by one).
"""

from __future__ import annotations

import random

import torch

from dewey_core.training.config import TrainingConfig
from dewey_core.training.forward import DocumentPlan, TrainingForward
from dewey_core.training.losses import cosine_loss, distillation_loss, matryoshka_loss, similarity_loss
from dewey_core.training.sampling import DocumentPlans, draw_passages, draw_window_runs
from dewey_core.training.targets import TeacherTargets, chunk_target_text, opening_span


def chunk_targets(plan: DocumentPlan, chunks: list[int], config: TrainingConfig) -> list[str]:
    """The texts the teacher embeds for ``chunks`` of ``plan``'s document."""
    opening = opening_span(plan.text, plan.tok, config.opening_tokens)
    return [chunk_target_text(plan.text, plan.spans[j], opening, config.chunk_context) for j in chunks]


class ChunkAlignment:
    """Late-chunked chunks towards the teacher's embedding of each chunk told its context;
    global vectors of whole documents towards the teacher's embedding of the document; each
    chunk embedded alone towards the teacher's embedding of it (the plain term)."""

    def __init__(self, forward: TrainingForward, plans: DocumentPlans, targets: TeacherTargets,
                 config: TrainingConfig) -> None:
        self.forward, self.plans, self.targets, self.config = forward, plans, targets, config

    def loss(self, rng: random.Random) -> dict[str, torch.Tensor]:
        config = self.config
        runs = draw_window_runs(self.plans, config.windows_per_step, rng, config.crop_share)
        chunk_out, global_out = self.forward.late_chunk(runs)
        student = torch.cat(chunk_out)
        target = self.targets.texts([t for r in runs for t in chunk_targets(r.plan, r.chunks, config)])
        terms = {"chunk": cosine_loss(student, target)}
        whole = [i for i, r in enumerate(runs) if r.complete]
        if whole and config.global_weight:
            documents = self.targets.documents([runs[i].plan.text for i in whole])
            terms["global"] = config.global_weight * cosine_loss(
                torch.stack([global_out[i] for i in whole]), documents)
        if config.plain_weight or config.plain_similarity_weight:
            plain = [r.plan.text[s:e] for r in runs for s, e in (r.plan.spans[j] for j in r.chunks)]
            alone, teacher = self.forward.encode(plain), self.targets.texts(plain)
            if config.plain_weight:
                terms["plain"] = config.plain_weight * cosine_loss(alone, teacher)
            if config.plain_similarity_weight and len(plain) > 1:
                terms["plain similarity"] = config.plain_similarity_weight * similarity_loss(alone, teacher)
        if config.matryoshka_dims:
            terms["matryoshka"] = matryoshka_loss(student, config.matryoshka_dims, config.loss_weights,
                                                  config.margin)
        return terms


class Distillation:
    """The student's embeddings of passages towards the teacher's, with the cosine, similarity
    and relative-similarity losses."""

    def __init__(self, forward: TrainingForward, plans: DocumentPlans, targets: TeacherTargets,
                 config: TrainingConfig) -> None:
        self.forward, self.plans, self.targets, self.config = forward, plans, targets, config

    def loss(self, rng: random.Random) -> dict[str, torch.Tensor]:
        config = self.config
        passages = draw_passages(self.plans, config.batch_size, rng)
        student = self.forward.encode(passages)
        terms = distillation_loss(student, self.targets.texts(passages), config.loss_weights, config.margin)
        if config.matryoshka_dims:
            terms["matryoshka"] = matryoshka_loss(student, config.matryoshka_dims, config.loss_weights,
                                                  config.margin)
        return terms
