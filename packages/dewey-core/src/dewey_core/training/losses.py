"""The distillation losses of the Jasper and Stella recipe, on batches of vectors.

Every loss compares a student batch ``(n, d_s)`` with a teacher batch ``(n, d_t)`` of the same
texts in the same order; vectors are L2-normalised here, so raw head outputs can be passed.

- :func:`cosine_loss`: each student vector towards its teacher vector (``d_s == d_t``).
- :func:`similarity_loss`: the batch's cosine-similarity matrix towards the teacher's (any
  sizes: only the ``n x n`` matrices are compared).
- :func:`relative_similarity_loss`: a margin ranking of pairs: where the teacher finds pair
  ``(i, j)`` more similar than pair ``(k, l)``, the student should too, by ``margin``.

Example:
    >>> import torch
    >>> from dewey_core.training.losses import cosine_loss
    >>> round(float(cosine_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]]))), 3)
    1.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: The recipe's weights for the cosine, similarity and relative-similarity losses, and its margin.
DISTILLATION_WEIGHTS = (10.0, 200.0, 20.0)
RESIM_MARGIN = 0.015


def _check(student: torch.Tensor, teacher: torch.Tensor, same_size: bool) -> None:
    if student.ndim != 2 or teacher.ndim != 2 or len(student) != len(teacher):
        raise ValueError(f"student and teacher must be (n, d) batches of the same texts, got "
                         f"{tuple(student.shape)} and {tuple(teacher.shape)}")
    if same_size and student.shape[1] != teacher.shape[1]:
        raise ValueError(f"cosine_loss needs vectors of one size, got {student.shape[1]} and "
                         f"{teacher.shape[1]}; project the student to the teacher's size first")


def cosine_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``1 - cos(student_i, teacher_i)``."""
    _check(student, teacher, same_size=True)
    return (1 - F.cosine_similarity(student, teacher.to(student.dtype), dim=-1)).mean()


def similarity_matrix(vectors: torch.Tensor) -> torch.Tensor:
    """Cosine similarities of every pair in a batch, ``(n, n)``."""
    unit = F.normalize(vectors.float(), dim=-1)
    return unit @ unit.T


def similarity_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between the student's and the teacher's similarity matrices."""
    _check(student, teacher, same_size=False)
    return F.mse_loss(similarity_matrix(student), similarity_matrix(teacher))


def relative_similarity_loss(student: torch.Tensor, teacher: torch.Tensor,
                             margin: float = RESIM_MARGIN) -> torch.Tensor:
    """Mean of ``relu(s_kl - s_ij + margin)`` over every two pairs of distinct texts with
    ``t_ij > t_kl`` (``s``, ``t``: student and teacher cosine similarities). Zero for batches
    of fewer than three texts (one pair has nothing to be ranked against)."""
    _check(student, teacher, same_size=False)
    first, second = torch.triu_indices(len(student), len(student), offset=1, device=student.device)
    s = similarity_matrix(student)[first, second]
    t = similarity_matrix(teacher).to(s.device)[first, second]
    ranked = t[:, None] > t[None, :]  # [p, q]: the teacher puts pair p above pair q
    if not ranked.any():
        return s.sum() * 0.0
    violation = torch.relu(s[None, :] - s[:, None] + margin)
    return violation[ranked].mean()


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor,
                      weights: tuple[float, float, float] = DISTILLATION_WEIGHTS,
                      margin: float = RESIM_MARGIN) -> dict[str, torch.Tensor]:
    """The three losses, weighted, by name (``cosine``, ``similarity``, ``relative``); a term
    whose weight is 0 is left out."""
    w_cos, w_sim, w_rel = weights
    terms = {}
    if w_cos:
        terms["cosine"] = w_cos * cosine_loss(student, teacher)
    if w_sim:
        terms["similarity"] = w_sim * similarity_loss(student, teacher)
    if w_rel:
        terms["relative"] = w_rel * relative_similarity_loss(student, teacher, margin)
    return terms


def matryoshka_loss(vectors: torch.Tensor, dims: tuple[int, ...],
                    weights: tuple[float, float, float] = DISTILLATION_WEIGHTS,
                    margin: float = RESIM_MARGIN) -> torch.Tensor:
    """Self-distillation of truncated vectors: for each size in ``dims``, the similarity and
    relative-similarity losses of ``vectors[:, :dim]`` against the full vectors (detached)."""
    full = vectors.detach()
    total = vectors.new_zeros(())
    for dim in dims:
        small = vectors[:, :dim]
        total = total + weights[1] * similarity_loss(small, full) \
            + weights[2] * relative_similarity_loss(small, full, margin)
    return total
