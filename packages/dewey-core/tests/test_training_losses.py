"""The three distillation losses and the Matryoshka term against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from dewey_core.training import (
    cosine_loss,
    distillation_loss,
    matryoshka_loss,
    relative_similarity_loss,
    similarity_loss,
)

R = 1 / math.sqrt(2)


def test_cosine_loss_is_the_mean_cosine_distance():
    student = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    teacher = torch.tensor([[5.0, 0.0], [1.0, 1.0]])  # cosines 1 and 1/sqrt(2); lengths ignored
    assert float(cosine_loss(student, teacher)) == pytest.approx((0 + (1 - R)) / 2)


def test_similarity_loss_is_the_mse_of_the_similarity_matrices():
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # similarity matrix [[1, 0], [0, 1]]
    teacher = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # [[1, r], [r, 1]], r = 1/sqrt(2)
    # Two off-diagonal cells differ by r: (r^2 + r^2) / 4 = 0.25. Sizes may differ.
    assert float(similarity_loss(student, teacher)) == pytest.approx(0.25)
    assert float(similarity_loss(student, torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0]]))) \
        == pytest.approx(0.25)


def test_relative_similarity_loss_ranks_pairs_as_the_teacher_does():
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    teacher = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # Pairs (0,1), (0,2), (1,2): teacher similarities 1, 0, 0; student 0, r, r. The teacher
    # ranks (0,1) above the two others (ties are not ranked): two comparisons, each violated
    # by r - 0 + margin.
    assert float(relative_similarity_loss(student, teacher, margin=0.015)) == pytest.approx(R + 0.015)
    assert float(relative_similarity_loss(student, teacher, margin=0.0)) == pytest.approx(R)
    # A student that agrees by more than the margin costs nothing.
    assert float(relative_similarity_loss(teacher * 3, teacher, margin=0.015)) == 0.0
    # Two texts make one pair: nothing to rank.
    assert float(relative_similarity_loss(student[:2], teacher[:2])) == 0.0


def test_distillation_loss_weights_each_term():
    student = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    teacher = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    terms = distillation_loss(student, teacher, weights=(10.0, 200.0, 20.0), margin=0.015)
    assert set(terms) == {"cosine", "similarity", "relative"}
    assert float(terms["cosine"]) == pytest.approx(10 * float(cosine_loss(student, teacher)))
    assert float(terms["similarity"]) == pytest.approx(200 * float(similarity_loss(student, teacher)))
    assert float(terms["relative"]) == pytest.approx(20 * (R + 0.015))
    assert set(distillation_loss(student, teacher, weights=(0.0, 1.0, 0.0))) == {"similarity"}


def test_matryoshka_loss_pulls_truncated_similarities_towards_the_full_ones():
    vectors = torch.tensor([[3.0, 4.0, 0.0], [4.0, 3.0, 5.0]], requires_grad=True)
    # Truncated to 2 dims: cosine 24/25 = 0.96; in full: 24/(5 * sqrt(50)) = 0.96/sqrt(2).
    # MSE over the 2x2 matrices: 2 * (0.96 * (1 - 1/sqrt(2)))^2 / 4, times the weight 200;
    # two texts have no pairs to rank.
    loss = matryoshka_loss(vectors, (2,), weights=(10.0, 200.0, 20.0))
    assert loss.item() == pytest.approx(200 * 2 * (0.96 * (1 - R)) ** 2 / 4, rel=1e-5)
    loss.backward()
    assert vectors.grad[:, :2].abs().sum() > 0
    assert vectors.grad[:, 2].abs().sum() == 0  # the full vectors are the fixed target


def test_losses_name_misshapen_batches():
    with pytest.raises(ValueError, match="same texts"):
        cosine_loss(torch.ones(3, 4), torch.ones(2, 4))
    with pytest.raises(ValueError, match="project the student"):
        cosine_loss(torch.ones(3, 4), torch.ones(3, 8))


def test_report_summary_pools_lengths_by_queries():
    from dewey_core.evaluation.runner import Score
    from dewey_core.training.report import summary_table

    def score(task, length, value, queries):
        return Score(task=task, length=length, tokens=length + 8.4, method="naive", metric="acc@1",
                     value=value, queries=queries)

    before = [score("needle", 256, 0.5, 20), score("needle", 512, 0.2, 10),
              score("contextual", 150, 0.4, 144)]
    after = [score("needle", 256, 0.25, 20), score("needle", 512, 0.5, 10),
             score("contextual", 150, 0.5, 144)]
    rows = summary_table(before, after)[2:]
    # needle: (0.5*20 + 0.2*10) / 30 = 0.4 before, (0.25*20 + 0.5*10) / 30 = 0.333 after
    assert rows == ["| needle | all | naive | acc@1 | 0.400 | 0.333 | -0.067 |",
                    "| contextual | 158 | naive | acc@1 | 0.400 | 0.500 | +0.100 |"]
