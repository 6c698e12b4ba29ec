"""The trainer: DDP and FSDP over 2 gloo processes equal one process; resume equals an unbroken run."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from kinema.config import DataConfig, ModelConfig, RunConfig, TrainConfig, dump_toml, to_dict
from kinema.train.trainer import train
from tests.tiny import tiny_config


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """A latent cache of random latents with captions, as `kinema cache` writes it."""
    folder = tmp_path_factory.mktemp("cache")
    channels = tiny_config().dit.latent_channels
    latents = torch.randn(16, channels, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    save_file({"latent": latents.to(torch.bfloat16)}, str(folder / "latents-00000.safetensors"))
    colours = ["red", "green", "blue", "yellow"]
    with (folder / "captions.jsonl").open("w") as f:
        for i in range(16):
            f.write(json.dumps({"index": i, "captions": [f"a {colours[i % 4]} sphere", f"{colours[i % 4]} ball"]}) + "\n")
    return folder


def run_config(cache: Path, out: Path, steps: int, batch_size: int, parallel: str = "ddp") -> RunConfig:
    model: ModelConfig = tiny_config()
    return RunConfig(
        model=model,
        data=DataConfig(source="cache", path=str(cache), num_workers=0),
        train=TrainConfig(stage="dit", out_dir=str(out), steps=steps, batch_size=batch_size, lr=1e-3,
                          warmup_steps=1, checkpoint_every=2, keep_last=5, log_every=1, parallel=parallel,
                          caption_dropout=0.25, precision="fp32"),
    )


def weights(out: Path, step: int) -> dict[str, torch.Tensor]:
    state = torch.load(out / f"step-{step:07d}" / "train_state.pt", weights_only=False)
    return state["model"]


def assert_close(a: dict, b: dict, tol: float) -> None:
    assert a.keys() == b.keys()
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    assert worst <= tol, worst


def torchrun(config: RunConfig, tmp_path: Path) -> None:
    path = tmp_path / f"{config.train.parallel}.toml"
    path.write_text(dump_toml(to_dict(config)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "kinema", "train", str(path), "--quiet"],
        check=True, env=env, timeout=300, cwd=Path(__file__).parent.parent,
    )


@pytest.fixture(scope="module")
def single(cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("single")
    train(run_config(cache, out, steps=4, batch_size=4), show_progress=False)
    return out


def test_single_process_learns_and_writes_checkpoints(single):
    records = [json.loads(line) for line in (single / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert (single / "latest").read_text() == "step-0000004"
    for name in ("config.toml", "dit.safetensors", "card.md"):
        assert (single / "step-0000004" / name).is_file()


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_equal_one_on_the_same_global_batch(cache, single, tmp_path, parallel):
    out = tmp_path / parallel
    torchrun(run_config(cache, out, steps=4, batch_size=2, parallel=parallel), tmp_path)
    assert_close(weights(out, 4), weights(single, 4), tol=1e-5)


def test_sample_videos_during_training(cache, tmp_path):
    from tests.tiny import make_tiny_checkpoint

    config = run_config(cache, tmp_path / "run", steps=2, batch_size=2)
    config.train.init_from = str(make_tiny_checkpoint(tmp_path / "init"))
    config.train.sample_every = 2
    train(config, show_progress=False)
    from kinema.io import read_video

    sample = read_video(tmp_path / "run" / "samples" / "step-0000002.mp4")
    assert sample.frames.shape[0] == 16


def test_resume_matches_an_unbroken_run(cache, single, tmp_path):
    out = tmp_path / "resumed"
    train(run_config(cache, out, steps=2, batch_size=4), show_progress=False)
    train(run_config(cache, out, steps=4, batch_size=4), resume=True, show_progress=False)
    assert_close(weights(out, 4), weights(single, 4), tol=1e-6)


def test_autoencoder_checkpoint_records_a_fitted_latent_scale(tmp_path):
    import numpy as np

    from kinema.checkpoint import load_config
    from kinema.config import VAEConfig
    from kinema.io import write_video

    for i in range(2):
        frames = np.full((9, 32, 32, 3), 40 + 80 * i, np.uint8)
        frames[:, 8:20, 8:20] = 250
        write_video(tmp_path / "videos" / f"clip{i}.mp4", frames, 8)
    config = RunConfig(
        model=ModelConfig(vae=VAEConfig(base_channels=8)),
        data=DataConfig(source="folder", path=str(tmp_path / "videos"), width=32, height=32, num_frames=9,
                        num_workers=0, image_fraction=0.0),
        train=TrainConfig(stage="vae", out_dir=str(tmp_path / "run"), steps=2, batch_size=2, checkpoint_every=2),
    )
    folder = train(config, show_progress=False)
    vae = load_config(folder).vae
    assert vae.latent_scale != 1.0 and vae.latent_shift != 0.0

    # Decoder-only fine-tuning from that checkpoint: the encoder and the latent scale stay exactly as they were.
    from kinema.checkpoint import load_state

    config.train = TrainConfig(stage="vae", out_dir=str(tmp_path / "decoder"), steps=2, batch_size=2,
                               checkpoint_every=2, init_from=str(folder), freeze_encoder=True, lr=1e-2)
    config.model.vae = VAEConfig(base_channels=8)  # replaced by init_from's config, scale included
    tuned = train(config, show_progress=False)
    assert load_config(tuned).vae == vae
    before, after = load_state(folder, "vae"), load_state(tuned, "vae")
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoder."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))


def test_export_ships_a_decoder_fine_tune_and_refuses_another_encoder(tmp_path, capsys):
    from kinema.checkpoint import load_config, load_state, save_checkpoint
    from kinema.cli import main
    from tests.tiny import make_tiny_checkpoint

    source = make_tiny_checkpoint(tmp_path / "run")
    cfg, vae = load_config(source), load_state(source, "vae")
    tuned = {k: v + 0.01 if k.startswith("decoder.") else v for k, v in vae.items()}
    save_checkpoint(tmp_path / "decoder", cfg, None, tuned)
    assert main(["export", str(source), "--vae", str(tmp_path / "decoder"), "--out", str(tmp_path / "ship")]) == 0
    shipped = load_state(tmp_path / "ship", "vae")
    key = next(k for k in shipped if k.startswith("decoder."))
    torch.testing.assert_close(shipped[key], tuned[key].bfloat16().float())
    assert (tmp_path / "ship" / "card.md").read_text().startswith("# tiny")

    other = {k: v + 0.01 if k.startswith("encoder.") else v for k, v in vae.items()}
    save_checkpoint(tmp_path / "encoder", cfg, None, other)
    assert main(["export", str(source), "--vae", str(tmp_path / "encoder"), "--out", str(tmp_path / "bad")]) != 0
    assert "encoder differs" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_max_minutes_from_the_command_line_stops_with_a_checkpoint(cache, tmp_path):
    from kinema.cli import main

    path = tmp_path / "run.toml"
    path.write_text(dump_toml(to_dict(run_config(cache, tmp_path / "out", steps=50, batch_size=2))))
    assert main(["train", str(path), "--quiet", "--max-minutes", "1e-9"]) == 0
    assert (tmp_path / "out" / "latest").read_text() == "step-0000001"


@pytest.mark.slow
def test_compiled_training_matches_eager(cache, single, tmp_path):
    """`train.compile = true` compiles in place: the same parameter names, the same weights as eager."""
    out = tmp_path / "compiled"
    config = run_config(cache, out, steps=4, batch_size=4)
    config.train.compile = True
    train(config, show_progress=False)
    assert_close(weights(out, 4), weights(single, 4), tol=1e-4)


def test_a_resumed_constant_run_cools_down_linearly(cache, tmp_path):
    """Warm-up, stable, decay: resuming with a new steps and decay_steps lowers the rate linearly to 0."""
    out = tmp_path / "wsd"
    train(run_config(cache, out, steps=2, batch_size=4), show_progress=False)
    cooled = run_config(cache, out, steps=6, batch_size=4)
    cooled.train.decay_steps = 4
    train(cooled, resume=True, show_progress=False)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    lr = {r["step"]: r["lr"] for r in records if "lr" in r}
    # Each record holds the rate for the step after it: 1e-3 held, then 1e-3 · (6 - step) / 4.
    assert lr[1] == pytest.approx(1e-3) and lr[2] == pytest.approx(1e-3)
    assert [lr[s] for s in (3, 4, 5, 6)] == pytest.approx([7.5e-4, 5e-4, 2.5e-4, 0.0])


def test_cache_in_parts_equals_one_cache_and_checks_its_start(tmp_path):
    from kinema.errors import ConfigError
    from kinema.train.cache import build_cache
    from kinema.train.data import LatentCache
    from tests.tiny import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path / "tiny")

    def config() -> RunConfig:
        return RunConfig(model=tiny_config(),
                         data=DataConfig(source="world", width=64, height=64, num_frames=5, num_workers=0),
                         train=TrainConfig(stage="dit", init_from=str(checkpoint)))

    whole = build_cache(config(), tmp_path / "whole", count=5, batch_size=2, shard_size=2, show_progress=False)
    parts = build_cache(config(), tmp_path / "parts", count=3, batch_size=2, shard_size=2, show_progress=False)
    with pytest.raises(ConfigError, match="--start 3"):
        build_cache(config(), parts, count=2, start=2, show_progress=False)
    build_cache(config(), parts, count=2, start=3, batch_size=2, shard_size=2, show_progress=False)
    a, b = LatentCache(whole), LatentCache(parts)
    assert len(a) == len(b) == 5 and torch.equal(a.latents, b.latents) and a.captions == b.captions
    rows = [json.loads(line)["index"] for line in (parts / "captions.jsonl").read_text().splitlines()]
    assert rows == [0, 1, 2, 3, 4]


def test_an_item_seen_again_is_seen_at_new_noise_with_its_other_captions(cache):
    from kinema.train.data import LatentCache, batch_indices
    from kinema.train.trainer import sample_generator

    data = LatentCache(cache)
    n = len(data)
    first, second = [data[i] for i in range(n)], [data[i] for i in range(n, 2 * n)]
    assert sorted(s["item"] for s in first) == list(range(n)) == sorted(s["item"] for s in second)
    assert [s["item"] for s in first] != [s["item"] for s in second]  # each epoch in its own order
    # The sample number keys the noise and timestep, so a clip's second visit draws new ones.
    key = {s["item"]: s["index"] for s in first}
    again = [(key[s["item"]], s["index"]) for s in second]
    assert all(a != b for a, b in again)
    a, b = again[0]
    assert not torch.equal(torch.randn(8, generator=sample_generator(0, a, 21)),
                           torch.randn(8, generator=sample_generator(0, b, 21)))
    captions: dict[int, set] = {}
    for i in range(8 * n):
        captions.setdefault(data[i]["item"], set()).add(data[i]["caption"])
    assert all(len(c) == 2 for c in captions.values())  # both paraphrases are used
    assert batch_indices(5, 4, 1, 2) == [44, 45, 46, 47]  # never wrapped to the data's length


def test_folder_buckets_give_each_batch_one_shape(tmp_path):
    import numpy as np

    from kinema.io import write_video
    from kinema.train.data import VideoFolder, collate

    for i in range(6):
        wide = i % 3 != 0  # four 16:9 clips, two 9:16 clips
        frames = np.full((6, 36, 64, 3) if wide else (6, 64, 36, 3), 30 * i, np.uint8)
        write_video(tmp_path / "videos" / f"clip{i}.mp4", frames, 8)
        (tmp_path / "videos" / f"clip{i}.txt").write_text(f"clip {i}")
    data = VideoFolder(DataConfig(source="folder", path=str(tmp_path / "videos"), width=32, height=32,
                                  num_frames=5, buckets=[[64, 32, 5], [32, 64, 3]], num_workers=0))
    assert [len(m) for m in data.members] == [0, 4, 2]
    shapes = set()
    for step in range(12):
        keys = data.batch_keys(step, 3, 0, 1)
        samples = [data[k] for k in keys]
        shapes.add(tuple(collate(samples)["video"].shape[1:]))
        assert all(s["item"] in data.members[keys[0][1]] for s in samples)
    assert shapes == {(3, 5, 32, 64), (3, 3, 64, 32)}  # both buckets drawn, never the empty square one


def test_widening_the_text_input_keeps_the_model_and_then_learns_the_new_layers(tmp_path):
    from kinema.checkpoint import load_state
    from kinema.errors import ConfigError
    from kinema.models.dit import DiffusionTransformer
    from kinema.train.trainer import DiTStage, widen_inputs
    from tests.tiny import make_tiny_checkpoint

    folder = make_tiny_checkpoint(tmp_path / "narrow")
    wide = tiny_config()
    wide.dit.text_dim, wide.text.layers = 768, (-1, 0)
    run = RunConfig(model=wide, data=DataConfig(source="world", width=32, height=32, num_frames=5),
                    train=TrainConfig(stage="dit", init_from=str(folder)))
    stage = DiTStage(run, torch.device("cpu"))
    narrow = DiffusionTransformer(tiny_config().dit)
    narrow.load_state_dict(load_state(folder, "dit"))
    x = torch.randn(2, 16, 2, 4, 4)
    t = torch.tensor([0.3, 0.8])
    wide_states, mask = stage.encode_text(["a red ball rolls to the left", "two cubes"])
    known = torch.zeros(2, 1, 2, 4, 4)
    with torch.no_grad():
        before = narrow(x, t, wide_states[..., :384], mask, x * 0, known)
        after = stage.model(x, t, wide_states, mask, x * 0, known)
    assert torch.allclose(before, after, atol=1e-6)  # the added columns start at zero
    assert stage.model.text_proj[0].weight[:, 384:].abs().sum() == 0
    loss = stage.model(x, t, wide_states, mask, x * 0, known).square().mean()
    loss.backward()
    assert stage.model.text_proj[0].weight.grad[:, 384:].abs().sum() > 0  # and they are trained
    swapped = tiny_config()
    swapped.text.layers = (0, -1)
    with pytest.raises(ConfigError, match=r"list the old layers first, e.g. \[-1, 0\]"):
        widen_inputs(load_state(folder, "dit"), tiny_config(), swapped)


def plain_and_widened(tmp_path: Path, **changes):
    """A random tiny transformer, and its weights widened by `widen_inputs` to a config with `changes`."""
    from kinema.checkpoint import load_state
    from kinema.models.dit import DiffusionTransformer
    from kinema.train.trainer import widen_inputs
    from tests.tiny import make_tiny_checkpoint

    folder = make_tiny_checkpoint(tmp_path / "plain")
    plain = DiffusionTransformer(tiny_config().dit)
    plain.load_state_dict(load_state(folder, "dit"))
    wide_cfg = tiny_config()
    wide_cfg.dit = dataclasses.replace(wide_cfg.dit, **changes)
    wide = DiffusionTransformer(wide_cfg.dit)
    wide.load_state_dict(widen_inputs(load_state(folder, "dit"), tiny_config(), wide_cfg))
    return plain, wide, wide_cfg


def assert_widened_unchanged_and_trained(before, after, new_columns: int) -> None:
    """`after` (widened from `before`) computes what `before` did, and its last `new_columns` patch-embedding
    columns (the added input channels) receive gradients."""
    x, text = torch.randn(1, 16, 2, 4, 4), torch.randn(1, 3, 384)
    mask = torch.ones(1, 3, dtype=torch.bool)
    with torch.no_grad():
        assert torch.allclose(before(x, 0.7, text, mask), after(x, 0.7, text, mask), atol=1e-6)
    after(x, 0.7, text, mask).square().mean().backward()
    assert after.patch_embed.weight.grad[:, -new_columns:].abs().sum() > 0


def test_frame_coordinates_widen_a_transformer_without_changing_it(tmp_path):
    from kinema.models.dit import frame_coordinates
    from kinema.train.trainer import widen_inputs

    grid = frame_coordinates(2, 3, 4, 6, torch.zeros(()))
    assert grid.shape == (2, 2, 3, 4, 6)
    assert grid[0, 0, 0, 0].tolist() == pytest.approx([-1, -0.6, -0.2, 0.2, 0.6, 1])  # x runs left to right
    assert grid[0, 1, 0, :, 0].tolist() == pytest.approx([-1, -1 / 3, 1 / 3, 1])  # y top to bottom
    plain, placed, placed_cfg = plain_and_widened(tmp_path, position_channels=True)
    assert_widened_unchanged_and_trained(plain, placed, 8)  # 2 channels x 1x2x2 patch
    with pytest.raises(Exception, match="position_channels"):
        widen_inputs(placed.state_dict(), placed_cfg, tiny_config())


def test_a_time_channel_tells_frames_apart_and_widens_a_placed_transformer(tmp_path):
    from kinema.models.dit import DiffusionTransformer, frame_coordinates
    from kinema.train.trainer import widen_inputs

    grid = frame_coordinates(1, 3, 2, 2, torch.zeros(()), time=True)
    assert grid.shape == (1, 3, 3, 2, 2)
    assert grid[0, 2, :, 1, 1].tolist() == pytest.approx([-1, 0, 1])  # first, middle, last frame
    assert torch.equal(grid[:, :2], frame_coordinates(1, 3, 2, 2, torch.zeros(())))  # x and y as before
    _, placed, placed_cfg = plain_and_widened(tmp_path, position_channels=True)
    timed_cfg = dataclasses.replace(placed_cfg, dit=dataclasses.replace(placed_cfg.dit, time_channel=True))
    timed = DiffusionTransformer(timed_cfg.dit)
    # a placed transformer widened to the time channel computes what it did, then learns to use it
    timed.load_state_dict(widen_inputs(placed.state_dict(), placed_cfg, timed_cfg))
    assert_widened_unchanged_and_trained(placed, timed, 4)  # 1 channel x 1x2x2 patch
    # once it reads time it has to keep reading it, and time needs the x, y channels
    with pytest.raises(Exception, match="time_channel"):
        widen_inputs(timed.state_dict(), timed_cfg, placed_cfg)
    with pytest.raises(Exception, match="time_channel"):
        DiffusionTransformer(dataclasses.replace(timed_cfg.dit, position_channels=False))


def test_init_from_a_run_folder_starts_from_its_latest_transformer(cache, single, tmp_path):
    from kinema.checkpoint import load_state
    from kinema.train.trainer import DiTStage

    # `single` is a run folder (checkpoints under step-*/ and a `latest` pointer), not a checkpoint folder;
    # until stop 18 its transformer was silently not loaded and the stage started from random weights.
    config = run_config(cache, tmp_path / "next", steps=1, batch_size=2)
    config.train.init_from = str(single)
    stage = DiTStage(config, torch.device("cpu"))
    latest = load_state(single, "dit")
    assert all(torch.equal(stage.model.state_dict()[k], v) for k, v in latest.items())


def test_time_shift_moves_training_times_towards_noise(cache, tmp_path):
    from kinema.flow import apply_shift
    from kinema.train.data import LatentCache, collate
    from kinema.train.trainer import DiTStage

    data = LatentCache(cache)
    batch = collate([data[i] for i in range(16)])

    def training_times(time_shift: float) -> torch.Tensor:
        config = run_config(cache, tmp_path / "shift", steps=1, batch_size=16)
        config.train.time_shift = time_shift
        stage = DiTStage(config, torch.device("cpu"))
        seen = []
        stage.model.register_forward_pre_hook(lambda module, args: seen.append(args[1].clone()))
        stage.loss(batch, step=1, seed=0)
        return seen[0]

    plain, shifted = training_times(0.0), training_times(3.0)  # the tiny latent's 12 tokens: no shift
    # The same draws, each warped towards t = 1 (pure noise), where the sampler decides a layout.
    assert torch.allclose(shifted, apply_shift(plain, 3.0), atol=1e-6)
    assert bool((shifted > plain).all())
    assert int((shifted > 0.8).sum()) > int((plain > 0.8).sum())


def test_known_frames_choose_the_training_tasks(cache, tmp_path):
    from kinema.errors import ConfigError
    from kinema.train.data import LatentCache, collate
    from kinema.train.trainer import DiTStage

    batch = collate([LatentCache(cache)[i] for i in range(16)])

    def known_masks(known_frames: dict) -> torch.Tensor:
        config = run_config(cache, tmp_path / "known", steps=1, batch_size=16)
        config.train.known_frames = known_frames
        stage = DiTStage(config, torch.device("cpu"))
        seen = []
        stage.model.register_forward_pre_hook(lambda module, args: seen.append(args[5][:, 0, :, 0, 0].clone()))
        stage.loss(batch, step=1, seed=0)
        return seen[0]  # (B, T): which latent frames each sample was given

    first = known_masks({"first": 1.0})  # every sample an image-to-video task
    assert bool((first[:, 0] == 1).all()) and bool((first[:, 1:] == 0).all())
    assert bool((known_masks({"none": 1.0}) == 0).all())
    default = known_masks({})  # the default mix: some text-only samples, some with frames given
    assert 0 < int((default.sum(1) == 0).sum()) < 16
    with pytest.raises(ConfigError, match="train.known_frames.*frist"):
        known_masks({"frist": 1.0})


def test_a_layout_prior_widens_a_transformer_without_changing_it(tmp_path):
    from kinema.errors import ConfigError
    from kinema.train.trainer import widen_inputs

    plain, prior, prior_cfg = plain_and_widened(tmp_path, layout_prior=3)
    x, text = torch.randn(1, 16, 2, 4, 4), torch.randn(1, 3, 384)
    mask = torch.ones(1, 3, dtype=torch.bool)
    with torch.no_grad():
        assert torch.allclose(plain(x, 0.9, text, mask), prior(x, 0.9, text, mask), atol=1e-6)
    (prior(x, 0.9, text, mask) - x).square().mean().backward()
    assert prior.layout.weight.grad.abs().sum() > 0  # 27 cosines x 16 channels, trained from zero
    with pytest.raises(ConfigError, match="layout_prior"):
        widen_inputs(prior.state_dict(), prior_cfg, tiny_config())


def test_lr_scales_give_a_head_its_own_learning_rate(cache, tmp_path):
    from kinema.errors import ConfigError
    from kinema.models.dit import DiffusionTransformer
    from kinema.train.trainer import param_groups

    cfg = tiny_config().dit
    cfg.layout_prior = 2
    model = DiffusionTransformer(cfg)
    groups = param_groups(model, 1e-3, {"layout": 10.0})
    rates = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert rates[id(model.layout.weight)] == pytest.approx(1e-2)
    assert rates[id(model.patch_embed.weight)] == pytest.approx(1e-3)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    with pytest.raises(ConfigError, match="no parameter name starts with layuot"):
        param_groups(model, 1e-3, {"layuot": 10.0})
    # Through a run: the scaled group follows the same warm-up and schedule, ten times higher.
    config = run_config(cache, tmp_path / "scaled", steps=2, batch_size=2)
    config.model.dit.layout_prior = 2
    config.train.lr_scales = {"layout": 10.0}
    train(config, show_progress=False)
    state = torch.load(tmp_path / "scaled" / "step-0000002" / "train_state.pt", weights_only=False)
    rates = sorted(g["lr"] for g in state["optimizer"]["param_groups"])
    assert rates[-1] == pytest.approx(10 * rates[0])


@pytest.mark.parametrize("check_first", [True, False])
def test_a_full_disk_stops_training_with_the_last_checkpoint_named(cache, tmp_path, small_disk, monkeypatch,
                                                                    capsys, check_first):
    """A checkpoint that does not fit stops the run with one line naming the last saved one; nothing is
    half-written and `latest` still points to a whole checkpoint, so freeing space and --resume goes on.
    With the check before writing switched off, torch.save meets the full disk itself ("unexpected pos")."""
    from kinema.cli import main
    from tests.conftest import fill_to

    out = small_disk("32m") / "run"
    path = tmp_path / "run.toml"
    path.write_text(dump_toml(to_dict(run_config(cache, out, steps=2, batch_size=2))))
    assert main(["train", str(path), "--quiet"]) == 0
    size = sum(f.stat().st_size for f in (out / "step-0000002").iterdir())
    assert (out / "step-0000002" / "train_state.pt").stat().st_size > (1 << 20) + (64 << 10)
    if check_first:
        fill_to(out.parent, size // 2)
    else:  # room for the 1 MiB margin but not the training state: torch.save runs out
        monkeypatch.setattr("kinema.train.trainer.state_bytes", lambda *states, dtype=None: 0)
        monkeypatch.setattr("kinema.checkpoint.state_bytes", lambda *states, dtype=None: 0)
        fill_to(out.parent, (1 << 20) + (64 << 10))
    capsys.readouterr()
    assert main(["train", str(path), "--quiet", "--resume", "--steps", "4"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert "checkpoint step-0000004 not saved" in err and "the disk is full" in err, err
    assert "the last saved is step-0000002" in err and "--resume" in err, err
    assert (out / "latest").read_text() == "step-0000002"
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []

    (out.parent / "filler").unlink()
    monkeypatch.undo()
    assert main(["train", str(path), "--quiet", "--resume", "--steps", "4"]) == 0
    assert (out / "latest").read_text() == "step-0000004"


def test_a_cache_on_a_full_disk_stops_without_half_a_shard(tmp_path, small_disk):
    from kinema.errors import InputError
    from kinema.train.cache import build_cache
    from kinema.train.data import LatentCache
    from tests.tiny import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path / "tiny")
    config = RunConfig(model=tiny_config(), data=DataConfig(source="world", width=64, height=64, num_frames=5,
                                                            num_workers=0),
                       train=TrainConfig(stage="dit", init_from=str(checkpoint)))
    disk = small_disk("1m")
    out = disk / "cache"
    with pytest.raises(InputError, match="the disk is full"):
        build_cache(config, out, count=3, batch_size=2, shard_size=2, show_progress=False)
    assert sorted(os.listdir(out)) == ["captions.jsonl"] and (out / "captions.jsonl").read_text() == ""

    subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
    build_cache(config, out, count=3, batch_size=2, shard_size=2, show_progress=False)
    assert len(LatentCache(out)) == 3
