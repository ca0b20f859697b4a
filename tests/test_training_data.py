"""The training stream: rendered inline or by DataLoader workers, step s is the same batch."""

import pytest
import torch

from lab.training_data import TrainingBatches, stream_seed, training_batches


def test_workers_render_exactly_the_batches_rendered_inline_in_step_order():
    inline = list(training_batches(seed=3, batch_size=4, start=5, stop=9, workers=0))
    ahead = list(training_batches(seed=3, batch_size=4, start=5, stop=9, workers=2))
    assert [s for s, _ in inline] == [s for s, _ in ahead] == [5, 6, 7, 8]
    for (_, (p1, x1)), (_, (p2, x2)) in zip(inline, ahead):
        assert p1 == p2 and torch.equal(x1, x2)
        assert x1.shape == (4, 3, 64, 64) and x1.min() >= -1 and x1.max() <= 1


def test_a_step_depends_on_seed_step_and_rank_only():
    a = TrainingBatches(seed=0, batch_size=2, rank=0)
    assert torch.equal(a[7][1], TrainingBatches(seed=0, batch_size=2, rank=0)[7][1])
    assert not torch.equal(a[7][1], a[8][1])
    assert not torch.equal(a[7][1], TrainingBatches(seed=0, batch_size=2, rank=1)[7][1])
    assert stream_seed(0, 7) != stream_seed(0, 7, stream=2)


def test_negative_workers_are_refused_with_the_accepted_range():
    with pytest.raises(ValueError, match="workers must be >= 0"):
        next(training_batches(0, 2, 0, 1, workers=-1))


def test_a_task_mix_changes_the_share_of_tasks_and_the_default_stream_does_not_change():
    from lab import world

    uniform = TrainingBatches(seed=0, batch_size=8)[3][0]
    assert uniform == world.training_batch(stream_seed(0, 3), 8)[0]  # () is the original stream
    only_position = TrainingBatches(seed=0, batch_size=64, task_weights=(0, 0, 0, 0, 1, 0))[3][0]
    assert all(world.parse_prompt(p).task == "position" for p in only_position)


def test_a_bad_task_mix_is_refused_naming_the_tasks():
    with pytest.raises(ValueError, match="one per task"):
        TrainingBatches(seed=0, batch_size=2, task_weights=(1, 1))
    with pytest.raises(ValueError, match="non-negative"):
        TrainingBatches(seed=0, batch_size=2, task_weights=(1, 1, 1, 1, -1, 1))
