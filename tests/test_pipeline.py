import numpy as np
import pytest

from kinema.errors import CancelledError, InputError
from kinema.io import Video, read_video
from kinema.pipeline import GenerationRequest, Pipeline, Shot, native_bf16, resolve_precision
from tests.tiny import make_tiny_checkpoint


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    folder = make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")
    return Pipeline.from_checkpoint(folder)


def clip(frames=9, size=32, seed=0) -> Video:
    rng = np.random.default_rng(seed)
    video = np.zeros((frames, size, size, 3), np.uint8)
    video[:] = rng.integers(0, 255, 3, dtype=np.uint8)
    for t in range(frames):
        video[t, 8:16, 2 * t : 2 * t + 8] = 255
    return Video(video, 8.0)


def test_text_to_video_length_size_fps(pipe, tmp_path):
    result = pipe.generate(GenerationRequest("a red sphere rolls left", seconds=1.0, check_safety=False))
    assert result.frames.shape == (8, 32, 32, 3)
    assert result.fps == 8.0
    out = pipe.generate_to_file(GenerationRequest("a red sphere", seconds=1.5, width=48, height=32,
                                                  check_safety=False), tmp_path / "a.mp4", sign=False)
    video = read_video(out.path)
    assert video.frames.shape == (12, 32, 48, 3) and video.fps == pytest.approx(8.0)


def test_seeded_and_deterministic(pipe):
    def run(seed):
        return pipe.generate(GenerationRequest("a blue cube", seconds=1.0, seed=seed, check_safety=False)).frames

    assert np.array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_image_to_video_first_frame_is_the_autoencoded_image(pipe):
    image = clip(1).frames[0]
    result = pipe.generate(GenerationRequest("x", task="image", image=image, seconds=1.0, check_safety=False))
    roundtrip = pipe.decode_latents(pipe.encode_frames(image[None]))[0]
    assert np.abs(result.frames[0].astype(int) - roundtrip.astype(int)).max() <= 1


def test_extend_keeps_input_frames_exactly(pipe):
    source = clip(11)
    for backward in (False, True):
        result = pipe.generate(GenerationRequest("x", task="extend", video=source, seconds=1.0, backward=backward,
                                                 check_safety=False))
        assert len(result.frames) == 11 + 8
        kept = result.frames[8:] if backward else result.frames[:11]
        assert np.array_equal(kept, source.frames)
    # Under 5 frames, a backward extension has no latent frame of the clip to condition on, yet keeps it.
    short = clip(3)
    result = pipe.generate(GenerationRequest("x", task="extend", video=short, seconds=1.0, backward=True,
                                             check_safety=False))
    assert len(result.frames) == 3 + 8 and np.array_equal(result.frames[8:], short.frames)


def test_interpolate_fill_connect_edit(pipe):
    source = clip(9)
    inter = pipe.generate(GenerationRequest("", task="interpolate", video=source, factor=2, check_safety=False))
    assert len(inter.frames) == 17 and inter.fps == 16.0
    assert np.array_equal(inter.frames[::2], source.frames)

    filled = pipe.generate(GenerationRequest("", task="fill", video=source, fill_frames=(3, 5), check_safety=False))
    assert len(filled.frames) == 9
    assert np.array_equal(filled.frames[:3], source.frames[:3]) and np.array_equal(filled.frames[6:], source.frames[6:])

    other = clip(9, seed=1)
    joined = pipe.generate(GenerationRequest("", task="connect", video=source, video_b=other, seconds=1.0,
                                             check_safety=False))
    assert np.array_equal(joined.frames[:9], source.frames) and np.array_equal(joined.frames[-9:], other.frames)
    assert len(joined.frames) > 18

    edited = pipe.generate(GenerationRequest("a green floor", task="edit", video=source, strength=0.5,
                                             check_safety=False))
    assert edited.frames.shape == source.frames.shape


def test_long_video_is_made_window_by_window(pipe):
    events = []
    result = pipe.generate(GenerationRequest("a ball", seconds=4.0, check_safety=False), progress=events.append)
    assert len(result.frames) == 32
    windows = {e["windows"] for e in events if "windows" in e}
    assert windows and max(windows) > 1
    fractions = [e["fraction"] for e in events]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert result.color_drift is not None and result.summary()["color_drift"] >= 0


def test_loop_and_storyboard(pipe):
    loop = pipe.generate(GenerationRequest("a ball", task="loop", seconds=2.0, check_safety=False))
    assert len(loop.frames) == 16
    shots = [Shot(0, 1.5, "a red ball"), Shot(1.5, 3, "a blue ball")]
    board = pipe.generate(GenerationRequest("", task="storyboard", shots=shots, seconds=3.0, check_safety=False))
    assert len(board.frames) == 24


def test_cancel_between_steps(pipe):
    with pytest.raises(CancelledError):
        pipe.generate(GenerationRequest("a ball", seconds=1.0, check_safety=False), cancel=lambda: True)


def test_preview_is_cheap_rgb(pipe):
    latent = pipe.encode_frames(clip(5).frames)
    preview = pipe.preview_rgb(latent)
    assert preview.shape == (2, 4, 4, 3) and preview.dtype == np.uint8


@pytest.mark.parametrize(
    "request_fields, message",
    [
        ({"width": 40}, "multiples of 16"),
        ({"width": 512, "height": 512}, "from 16 to 64"),
        ({"seconds": -1}, "seconds"),
        ({"task": "extend"}, "needs an input video"),
        ({"task": "image", "image": clip(1).frames[0], "image_at": "middle"}, "'start' or 'end'"),
        ({"task": "fill", "video": clip(9), "fill_frames": (3, 20)}, "frames 0-8"),
        ({"task": "interpolate", "video": clip(9), "factor": 1}, "factor"),
        ({"task": "dance"}, "unknown task"),
        ({"prompt": "x" * 3000}, "limit"),
        ({"negative_prompt": "x" * 3000}, "negative prompt is 3000 characters"),
    ],
)
def test_bad_requests_name_the_problem(pipe, request_fields, message):
    fields = {"prompt": "a ball", "check_safety": "prompt" in "".join(request_fields), **request_fields}
    with pytest.raises(InputError, match=message):
        pipe.generate(GenerationRequest(**fields))


def test_a_negative_prompt_takes_the_empty_prompts_place_in_guidance(pipe):
    def run(negative="", guidance=4.0):
        request = GenerationRequest("a red sphere", negative_prompt=negative, guidance_scale=guidance, seconds=1.0,
                                    check_safety=False)
        return pipe.generate(request).frames

    plain = run()
    assert np.array_equal(run(""), plain)
    assert not np.array_equal(run("a blue cube"), plain)  # the tiny model's text moves pixels a little
    # without guidance there is no unconditional pass for it to replace
    assert np.array_equal(run("a blue cube", guidance=1.0), run(guidance=1.0))


@pytest.mark.slow
def test_compiled_pipeline_makes_the_same_video(tmp_path):
    """`Pipeline.compile()` (the CLI's --compile) changes the speed, not the video."""
    folder = make_tiny_checkpoint(tmp_path / "tiny")
    request = GenerationRequest("a red sphere rolls left", seconds=1.0, check_safety=False)
    eager = Pipeline.from_checkpoint(folder).generate(request).frames.astype(int)
    compiled = Pipeline.from_checkpoint(folder).compile().generate(request).frames.astype(int)
    assert compiled.shape == eager.shape
    assert np.abs(compiled - eager).max() <= 2


def test_compile_without_a_cxx_compiler_says_what_to_do(pipe, monkeypatch):
    import shutil

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(InputError, match="C\\+\\+ compiler"):
        pipe.compile()


def test_the_checkpoints_sampling_shift_sets_the_schedule(pipe):
    seen = []
    hook = pipe.dit.register_forward_pre_hook(lambda module, args: seen.append(round(float(args[1][0]), 4)))
    try:
        pipe.generate(GenerationRequest("a red sphere", seconds=1.0, check_safety=False))
        plain = list(seen)
        seen.clear()
        pipe.cfg.sampling.shift = 3.0
        pipe.generate(GenerationRequest("a red sphere", seconds=1.0, check_safety=False))
    finally:
        pipe.cfg.sampling.shift = 0.0
        hook.remove()
    # Two steps from t = 1: halfway by default (the tiny latent's 12 tokens get no shift), and with shift 3
    # the second step is taken at 3 * 0.5 / (1 + 2 * 0.5) = 0.75, nearer to the noise.
    assert plain == [1.0, 0.5] and seen == [1.0, 0.75]


def test_native_bf16_reads_the_cpus_flags(tmp_path, monkeypatch):
    info = tmp_path / "cpuinfo"
    info.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    assert not native_bf16("cpu", info)
    info.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16\n")
    assert native_bf16("cpu", info)
    info.write_text("flags\t\t: fpu amx_tile amx_bf16\n")
    assert native_bf16("cpu", info)
    assert not native_bf16("cpu", tmp_path / "missing")  # not Linux: no /proc, so fp32
    import kinema.pipeline as pipeline

    for native, chosen in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(pipeline, "native_bf16", lambda device, native=native: native)
        assert resolve_precision("auto") == chosen
        assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    with pytest.raises(InputError, match="precision 'fp16'.*auto, fp32, bf16"):
        resolve_precision("fp16")
    from kinema.cli.generate import PRECISION_CHOICES

    assert PRECISION_CHOICES == pipeline.PRECISIONS  # the CLI offers what the pipeline takes


def test_bf16_precision_makes_nearly_the_same_video_and_says_so(tmp_path):
    """set_precision("bf16") (the CLI's --precision) runs the transformer under autocast: the video stays
    close to fp32's and the result records which precision made it."""
    folder = make_tiny_checkpoint(tmp_path / "tiny")
    request = GenerationRequest("a red sphere rolls left", seconds=1.0, check_safety=False)
    pipe = Pipeline.from_checkpoint(folder)
    full = pipe.set_precision("fp32").generate(request)
    half = pipe.set_precision("bf16").generate(request)
    assert (full.precision, half.precision) == ("fp32", "bf16")
    assert half.summary()["precision"] == "bf16"
    diff = np.abs(half.frames.astype(int) - full.frames.astype(int))
    assert diff.any(), "bf16 autocast changed nothing: the transformer did not run under it"
    assert diff.mean() < 3
