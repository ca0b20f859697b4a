"""The lab's models are real SanaPipelines: sizes, loading, text encoding, generation."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from lab import model
from lab.sampling import SamplerConfig, candidate_seeds, generate

FAST = SamplerConfig(steps=2, guidance_scale=4.5, batch_size=64)


def test_size_table_has_tiny_and_L_has_three_times_the_blocks_of_S():
    assert {"tiny", "S", "L", "sana-1.6b", "sana-4.8b"} <= set(model.SIZES)
    s, l_ = model.SIZES["S"], model.SIZES["L"]
    assert l_.num_layers == 3 * s.num_layers and l_.width == s.width


def test_transformer_uses_sana15_qk_norm_and_config_matches_blocks():
    t = model.build_transformer("tiny")
    assert t.config.qk_norm == "rms_norm_across_heads"
    assert t.config.num_layers == len(t.transformer_blocks)


def test_sincos_position_embedding_adds_a_fixed_table_that_changes_the_output_and_survives_saving(tmp_path):
    from diffusers import SanaTransformer2DModel

    x = torch.randn(1, model.LATENT_CHANNELS, 8, 8, generator=torch.Generator().manual_seed(0))
    text = torch.randn(1, 4, 16, generator=torch.Generator().manual_seed(1))

    def output(t):
        with torch.no_grad():
            return t(x, encoder_hidden_states=text, timestep=torch.tensor([500.0]), return_dict=False)[0]

    torch.manual_seed(0)
    nope = model.build_transformer("tiny")
    torch.manual_seed(0)
    sincos = model.build_transformer("tiny", position_embedding="sincos")
    assert all(torch.equal(a, b) for a, b in zip(nope.parameters(), sincos.parameters()))  # nothing learnt added
    assert nope.config.interpolation_scale is None and sincos.config.interpolation_scale == 1
    assert not torch.allclose(output(nope), output(sincos), atol=1e-4)
    sincos.save_pretrained(tmp_path)
    assert torch.equal(output(SanaTransformer2DModel.from_pretrained(tmp_path)), output(sincos))
    with pytest.raises(ValueError, match="unknown position_embedding 'rope'"):
        model.build_transformer("tiny", position_embedding="rope")


def test_real_sana_sizes_build_on_meta_device_with_published_parameter_counts():
    p16 = sum(p.numel() for p in model.build_transformer("sana-1.6b", device="meta").parameters())
    p48 = sum(p.numel() for p in model.build_transformer("sana-4.8b", device="meta").parameters())
    assert 1.5e9 < p16 < 1.7e9 and 4.6e9 < p48 < 4.9e9


def test_encode_text_equals_what_the_pipeline_feeds_the_transformer(tiny_pipeline):
    prompts = ["a photo of a red circle", ""]
    ours, mask = model.encode_text(tiny_pipeline.tokenizer, tiny_pipeline.text_encoder, prompts)
    theirs, their_mask, *_ = tiny_pipeline.encode_prompt(
        prompts,
        do_classifier_free_guidance=False,
        complex_human_instruction=None,
        max_sequence_length=model.text_max_length(tiny_pipeline.tokenizer),
    )
    assert torch.equal(mask, their_mask)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_prompt_embedding_does_not_depend_on_padding_length(tiny_pipeline):
    # Training pads to 16 tokens, a plain SanaPipeline call pads to 300: real tokens must agree.
    tok, te = tiny_pipeline.tokenizer, tiny_pipeline.text_encoder
    short, m16 = model.encode_text(tok, te, ["a photo of three squares"], 16)
    long, m300 = model.encode_text(tok, te, ["a photo of three squares"], 300)
    n = int(m16.sum())
    assert int(m300.sum()) == n
    assert torch.allclose(short[0, :n], long[0, :n], atol=1e-5)


def test_saved_pipeline_generates_in_a_fresh_process_that_never_imports_lab(tiny_pipeline_dir):
    code = textwrap.dedent(f"""
        import sys, torch
        from diffusers import SanaPipeline
        pipe = SanaPipeline.from_pretrained({str(tiny_pipeline_dir)!r})
        out = pipe("a photo of a red circle", height=64, width=64, num_inference_steps=2,
                   complex_human_instruction=None, use_resolution_binning=False, output_type="np",
                   generator=torch.Generator().manual_seed(0))
        assert out.images.shape == (1, 64, 64, 3), out.images.shape
        assert not any(m == "lab" or m.startswith("lab.") for m in sys.modules), "lab was imported"
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().endswith("ok")


def test_candidate_is_the_same_image_alone_or_in_a_batch(tiny_pipeline):
    prompt = "a photo of two crosses"
    batch = generate(tiny_pipeline, [prompt] * 8, candidate_seeds(10, 8), FAST)
    alone = generate(tiny_pipeline, [prompt], [15], FAST)
    assert np.abs(batch[5].astype(int) - alone[0].astype(int)).max() <= 1


def test_generate_warns_on_unknown_words_and_still_generates(tiny_pipeline):
    with pytest.warns(UserWarning, match="dog"):
        out = generate(tiny_pipeline, ["a photo of a red dog"], [0], FAST)
    assert out.shape == (1, 64, 64, 3) and out.dtype == np.uint8


@pytest.mark.parametrize(
    "prompts,seeds,resolution,match",
    [
        ([""], [0], None, "empty"),
        (["a photo of a circle"], [0, 1], None, "seed"),
        (["a photo of a circle"], [0], 128, "resolution 128"),
    ],
)
def test_generate_rejects_bad_input_with_a_clear_error(tiny_pipeline, prompts, seeds, resolution, match):
    with pytest.raises(ValueError, match=match):
        generate(tiny_pipeline, prompts, seeds, FAST, resolution=resolution)


def test_load_pipeline_rejects_a_directory_that_is_not_a_pipeline(tmp_path):
    with pytest.raises(ValueError, match="model_index.json"):
        model.load_pipeline(tmp_path)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(ValueError, match="StableDiffusionPipeline"):
        model.load_pipeline(tmp_path)


def test_load_pipeline_reports_a_corrupt_checkpoint(tiny_pipeline_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_pipeline_dir, broken)
    weights = next((broken / "transformer").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ValueError, match="could not load"):
        model.load_pipeline(broken)


def _sana_shaped_pipeline(path):
    """A tiny random pipeline shaped like SANA 1.5's: DC-AE f32c32 (6 stages), 32 latent channels,
    qk-norm transformer, Gemma-2 text encoder; 128x128 images -> 4x4 latents."""
    from lab.model import (
        TextEncoderSize,
        TransformerSize,
        VAESize,
        build_pipeline,
        build_text_encoder,
        build_tokenizer,
        build_vae,
    )

    vae = build_vae(VAESize((4, 4, 8, 8, 16, 32), (1,) * 6, (1,) * 6, latent_channels=32), scaling_factor=0.41407)
    tok = build_tokenizer()
    te = build_text_encoder(tok, TextEncoderSize.for_hidden(24))
    size = TransformerSize(2, 2, 8, 2, 8, 24, in_channels=32, sample_size=4)
    pipe = build_pipeline(size, vae=vae, tokenizer=tok, text_encoder=te)
    pipe.save_pretrained(path)


def test_lab_generate_runs_on_a_sana15_shaped_pipeline(tmp_path):
    from lab.cli import main

    torch.manual_seed(0)
    _sana_shaped_pipeline(tmp_path / "sana")
    main(
        [
            "generate",
            "--model",
            str(tmp_path / "sana"),
            "--prompt",
            "a photo of a red circle",
            "--n",
            "2",
            "--steps",
            "2",
            "-o",
            str(tmp_path / "grid.png"),
        ]
    )
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_shipped_autoencoder_is_never_the_bottleneck():
    """Decoded renders of the shipped DC-AE still pass GenEval-mini with their true prompts."""
    from pathlib import Path

    from diffusers import AutoencoderDC

    from lab.evaluation import autoencoder_fidelity

    path = Path(__file__).parent.parent / "checkpoints" / "vae"
    if not (path / "config.json").is_file():
        pytest.skip("no shipped autoencoder yet (lab train-vae)")
    report = autoencoder_fidelity(AutoencoderDC.from_pretrained(path).eval(), num_images=128, seed=1000)
    correct = np.mean([v.correct for v in report.verdicts])
    assert correct >= 0.99, report.table()


def test_generate_warns_once_per_prompt_outside_training_at_the_callers_line(tiny_pipeline):
    import warnings

    prompt = "a photo of three purple crosses"  # a colour on a count: never in training
    with pytest.warns(UserWarning, match="'a photo of three purple crosses' is outside what lab models") as record:
        generate(tiny_pipeline, [prompt] * 2, [0, 1], FAST)
    ours = [w for w in record if "outside what lab models" in str(w.message)]
    assert len(ours) == 1 and ours[0].filename == __file__  # the user's call, not a torch file
    with warnings.catch_warnings():
        warnings.filterwarnings("error", category=UserWarning)
        generate(tiny_pipeline, [prompt], [0], FAST)  # once per prompt
        generate(tiny_pipeline, ["a photo of two circles"], [0], FAST)  # a training prompt: silent


@pytest.mark.parametrize("field, value", [("steps", 0), ("guidance_scale", -1.0), ("batch_size", 0)])
def test_sampler_config_rejects_values_out_of_range(field, value):
    from lab.sampling import SamplerConfig

    with pytest.raises(ValueError, match=f"sampler {field} .* expected >= "):
        SamplerConfig(**{field: value})


def test_importing_the_lab_and_diffusers_prints_no_bitsandbytes_kernel_warning():
    code = "import lab.model, lab.sampling; from diffusers import SanaPipeline; import bitsandbytes"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "gemm_4bit_forward" not in r.stderr + r.stdout


def test_many_untrained_prompts_make_one_warning_that_counts_them(tiny_pipeline):
    prompts = [
        "a photo of two red circles",
        "a photo of three blue squares",
        "a photo of four green crosses",
        "a photo of two pink triangles",
    ]  # colours on counts: never in training
    with pytest.warns(
        UserWarning, match="4 prompts are .*'a photo of two red circles'.* outside what lab models"
    ) as record:
        generate(tiny_pipeline, prompts, range(4), FAST)
    assert len([w for w in record if "outside what lab models" in str(w.message)]) == 1
