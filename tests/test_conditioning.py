import pytest
import torch

from kinema.conditioning import (
    MASK_STRATEGIES,
    connect_mask,
    extend_mask,
    fill_mask,
    image_mask,
    known_latent_indices,
    latent_frame_count,
    latent_frames_covering,
    latent_index,
    pixel_frame_count,
    pixel_range,
    plan_windows,
    random_known_mask,
    strategy_mask,
    text_to_video_mask,
)
from kinema.errors import InputError


def frames(mask: torch.Tensor) -> list[int]:
    return [int(v) for v in mask.flatten()]


@pytest.mark.parametrize("strategy", MASK_STRATEGIES)
def test_each_strategy_mask(strategy):
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        T = int(torch.randint(3, 9, (1,), generator=g))
        m = frames(strategy_mask(strategy, T, g))
        assert len(m) == T and set(m) <= {0, 1}
        assert 0 in m, "every mask leaves a frame to generate"
        known = [i for i, v in enumerate(m) if v]
        if strategy == "none":
            assert known == []
        elif strategy == "first":
            assert known == [0]
        elif strategy == "first_k":
            assert known == list(range(len(known))) and known
        elif strategy == "last_k":
            assert known == list(range(T - len(known), T)) and known
        elif strategy == "both_ends":
            assert m[0] == 1 and m[-1] == 1
            first_gap = m.index(0)
            assert all(v == 0 for v in m[first_gap : first_gap + m[first_gap:].count(0)])
        else:
            assert 1 <= len(known) < T
    # One latent frame (an image) can only be generated whole.
    assert frames(strategy_mask(strategy, 1, g)) == [0]


def test_random_known_mask_mix_and_shape():
    g = torch.Generator().manual_seed(0)
    masks = random_known_mask(2000, 5, g)
    assert masks.shape == (2000, 1, 5, 1, 1)
    none_fraction = (masks.flatten(1).sum(1) == 0).float().mean().item()
    assert 0.45 < none_fraction < 0.6
    assert (masks.flatten(1).min(1).values == 0).all()
    only_first = random_known_mask(10, 5, g, probs={"first": 1.0})
    assert torch.equal(only_first, image_mask(5).float().view(1, 1, 5, 1, 1).expand(10, 1, 5, 1, 1))
    assert torch.equal(random_known_mask(8, 5, torch.Generator().manual_seed(3)),
                       random_known_mask(8, 5, torch.Generator().manual_seed(3)))
    with pytest.raises(InputError, match="unknown mask strategy"):
        random_known_mask(2, 5, g, probs={"sideways": 1.0})


def test_task_masks():
    assert text_to_video_mask(4).shape == (4,) and text_to_video_mask(4).dtype == torch.bool
    assert frames(text_to_video_mask(4)) == [0, 0, 0, 0]
    assert frames(image_mask(4)) == [1, 0, 0, 0]
    assert frames(image_mask(4, at="end")) == [0, 0, 0, 1]
    assert frames(extend_mask(5, 2)) == [1, 1, 0, 0, 0]
    assert frames(extend_mask(5, 2, backward=True)) == [0, 0, 0, 1, 1]
    # A clip of under 5 frames extended backwards gives no latent frame beyond its first.
    assert frames(extend_mask(3, 0, backward=True)) == [0, 0, 0]
    assert frames(fill_mask(6, [0, 2, 5])) == [1, 0, 1, 0, 0, 1]
    assert frames(connect_mask(6, 2, 1)) == [1, 1, 0, 0, 0, 1]
    assert frames(connect_mask(4, 2, 0)) == [1, 1, 0, 0]
    with pytest.raises(InputError):
        extend_mask(3, 3)
    with pytest.raises(InputError):
        extend_mask(3, -1)
    with pytest.raises(InputError):
        connect_mask(4, 2, 2)
    with pytest.raises(InputError):
        fill_mask(3, [3])
    with pytest.raises(InputError):
        image_mask(3, at="middle")


def generated_by_window(known: torch.Tensor, spans: list[tuple[int, int]], window: int) -> list[list[int]]:
    """The frames each window makes (those not fixed before it); each window fits and makes at least one."""
    done = known.clone()
    made = []
    for start, end in spans:
        assert 0 <= start < end <= len(known) and end - start <= window
        new = [i for i in range(start, end) if not done[i]]
        assert new, "every window makes at least one frame"
        made.append(new)
        done[start:end] = True
    return made


@pytest.mark.parametrize("total,window,context", [(5, 5, 2), (3, 5, 2), (16, 5, 2), (17, 5, 1), (9, 4, 0), (30, 6, 3)])
def test_plan_windows_covers_every_frame_once(total, window, context):
    known = torch.zeros(total, dtype=torch.bool)
    spans = plan_windows(known, window, context)
    assert spans[0] == (0, min(window, total))
    made = generated_by_window(known, spans, window)
    assert [i for new in made for i in new] == list(range(total))
    for i, ((start, end), new) in enumerate(zip(spans, made, strict=True)):
        # Every window is as long as the video allows; after the first, it opens on `context` fixed frames.
        assert end - start == min(window, total)
        assert new == list(range(new[0], end))
        if i:
            assert new[0] - start >= context
    # Each window after the first adds window - context new frames (the last may add fewer): cost is linear.
    assert len(spans) == 1 + max(0, -(-(total - window) // (window - context)))
    # Backwards, the same windows mirrored: they start at the end and work towards the start.
    assert plan_windows(known, window, context, backward=True) == [(total - end, total - start) for start, end in spans]


def test_plan_windows_skip_known_frames():
    known = torch.tensor([1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1], dtype=torch.bool)
    spans = plan_windows(known, 4, 1)
    assert spans == [(1, 5), (4, 8), (7, 11)]
    assert generated_by_window(known, spans, 4) == [[2, 3, 4], [5, 6, 7], [8, 9]]
    # An image at the end: windows grow backwards from it, each opening on a fixed frame.
    at_end = torch.tensor([0, 0, 0, 0, 0, 1], dtype=torch.bool)
    assert plan_windows(at_end, 3, 1, backward=True) == [(3, 6), (1, 4), (0, 3)]
    assert plan_windows(torch.ones(4, dtype=torch.bool), 3, 1) == []


def test_plan_windows_rejects_context_as_long_as_window():
    with pytest.raises(InputError, match="shorter than the window"):
        plan_windows(torch.zeros(10, dtype=torch.bool), 3, 3)


def test_pixel_and_latent_frame_indices():
    assert [latent_index(f) for f in range(10)] == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3]
    assert pixel_range(0) == (0, 1) and pixel_range(1) == (1, 5) and pixel_range(3) == (9, 13)
    for f in range(40):
        start, end = pixel_range(latent_index(f))
        assert start <= f < end
    assert [latent_frame_count(n) for n in (1, 5, 17, 65)] == [1, 2, 5, 17]
    assert [pixel_frame_count(k) for k in (1, 2, 5, 17)] == [1, 5, 17, 65]
    with pytest.raises(InputError, match="1 \\+ 4k"):
        latent_frame_count(16)
    # Any frame count rounds up to the shortest 1 + 4k clip holding it.
    assert [latent_frames_covering(n) for n in (1, 2, 5, 6, 16, 17, 65)] == [1, 2, 2, 3, 5, 5, 17]
    for n in (1, 5, 17, 65):
        assert latent_frames_covering(n) == latent_frame_count(n)
    with pytest.raises(InputError):
        latent_frames_covering(0)
    assert known_latent_indices([0, 1, 2, 3, 4, 5, 6]) == [0, 1]
    assert known_latent_indices(range(9, 13)) == [3]
