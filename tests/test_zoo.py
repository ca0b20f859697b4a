"""Exporting a run into the zoo: pipeline + config + log + GenEval-mini + model card."""

import json

import pytest

from lab import world
from lab.model import load_pipeline
from lab.train import TrainConfig, train
from lab.zoo import export_run, rescore, training_cost


def test_export_writes_a_loadable_pipeline_with_card_log_and_geneval(tiny_vae_dir, tmp_path):
    train(
        TrainConfig(size="tiny", vae=str(tiny_vae_dir), steps=2, batch_size=2, warmup_steps=1),
        tmp_path / "run",
        progress=False,
    )
    prompts = tmp_path / "two.jsonl"
    world.write_prompts(world.load_prompts("quick")[:2], prompts)
    scores = export_run(
        tmp_path / "run",
        tmp_path / "zoo" / "T",
        "T",
        "A test model.",
        "lab train ...",
        prompt_sets=(str(prompts),),
        images_per_prompt=1,
    )
    dest = tmp_path / "zoo" / "T"
    assert load_pipeline(dest).transformer.config.num_layers == 2
    card = (dest / "README.md").read_text()
    assert "GenEval-mini" in card and "lab train ..." in card and "overall" in card
    report = json.loads((dest / "geneval_two.json").read_text())
    assert report["n_images"] == 2 and scores["two"] == report["overall"]
    assert (dest / "train_log.jsonl").is_file() and (dest / "train_config.yaml").is_file()
    assert "95% interval" in card
    # re-scoring rewrites the verdicts and the card's table, naming the score it replaces
    rescored = rescore(dest, prompt_sets=(str(prompts),), images_per_prompt=2)
    assert (
        rescored["two"]["before"] == scores["two"]
        and json.loads((dest / "geneval_two.json").read_text())["n_images"] == 4
    )
    card = (dest / "README.md").read_text()
    assert "Before re-scoring: two" in card and "lab train ..." in card and "2 images per prompt" in card


def test_export_refuses_an_unfinished_run(tmp_path):
    with pytest.raises(ValueError, match="no finished pipeline"):
        export_run(tmp_path, tmp_path / "dest", "X", "", "")


def test_training_cost_adds_up_block_images_along_growth_and_pruning(tiny_vae_dir, tmp_path):
    from lab.growth import grow_pipeline_dir
    from lab.pruning import save_pruned

    def run(name, init_from="", **kw):
        cfg = TrainConfig(init_from=init_from, vae=str(tiny_vae_dir), warmup_steps=1, ema_decay=0.0, **kw)
        return train(cfg, tmp_path / name, progress=False)

    s = run("S", size="tiny", steps=3, batch_size=2)  # tiny: 2 blocks -> 2 x 3 x 2 = 12
    grown = grow_pipeline_dir(s, tmp_path / "L_init", 4)
    big = run("L", init_from=str(grown), steps=2, batch_size=2)  # + 4 x 2 x 2 = 16
    pruned = save_pruned(load_pipeline(big), [0, 3], tmp_path / "pruned", {"source": str(big)})
    small = run("P", init_from=str(pruned), steps=1, batch_size=3)  # + 2 x 1 x 3 = 6
    assert [training_cost(p) for p in (s, grown, big, pruned, small)] == [12, 12, 28, 28, 34]
    assert training_cost(tmp_path / "nowhere") is None
    prompts = tmp_path / "one.jsonl"
    world.write_prompts(world.load_prompts("quick")[:1], prompts)
    export_run(tmp_path / "L", tmp_path / "zoo" / "L", "L", "", "", prompt_sets=(str(prompts),), images_per_prompt=1)
    shipped = tmp_path / "zoo" / "L"
    assert json.loads((shipped / "growth.json").read_text())["source"] == str(s)  # L_init is not shipped
    assert training_cost(shipped) == 28


def test_shipped_L_records_its_lineage_and_loads_at_any_depth_from_its_ranking():
    from lab.provenance import REPO_ROOT
    from lab.pruning import ImportanceTable, load_pruned

    L = REPO_ROOT / "checkpoints" / "L"
    assert training_cost(L) == 8 * 2400 * 512 + 24 * 1500 * 256  # S v3's run, then L v2's own
    ranking = ImportanceTable.load(L / "importance.json")
    pipe = load_pruned(L, 12, ranking=L / "importance.json")
    assert pipe.transformer.config.num_layers == len(pipe.transformer.transformer_blocks) == 12
    assert ranking.num_blocks == 24


def test_fp16_export_halves_the_weights_and_loads_back_the_rounded_model_it_scored(tiny_vae_dir, tmp_path):
    import torch
    from safetensors import safe_open

    from lab.model import PIPELINE_MODELS, round_weights_to_fp16

    run = train(
        TrainConfig(size="tiny", vae=str(tiny_vae_dir), steps=1, batch_size=2, warmup_steps=1), tmp_path / "run"
    )
    prompts = tmp_path / "one.jsonl"
    world.write_prompts(world.load_prompts("quick")[:1], prompts)
    dest = tmp_path / "zoo" / "H"
    export_run(tmp_path / "run", dest, "H", "", "", prompt_sets=(str(prompts),), images_per_prompt=1, fp16=True)
    for name in PIPELINE_MODELS:
        [stored] = (dest / name).glob("*.safetensors")
        [original] = (run / name).glob("*.safetensors")
        with safe_open(stored, "pt") as f:
            assert {f.get_tensor(k).dtype for k in f.keys()} <= {torch.float16, torch.int64}
        assert stored.stat().st_size < 0.6 * original.stat().st_size
    expected = load_pipeline(run)
    round_weights_to_fp16(expected)
    shipped = load_pipeline(dest)  # read back in fp32
    for name in PIPELINE_MODELS:
        got, want = getattr(shipped, name).state_dict(), getattr(expected, name).state_dict()
        assert all(got[k].dtype == torch.float32 and torch.equal(got[k], want[k]) for k in want)
    assert not torch.equal(expected.transformer.proj_out.weight, load_pipeline(run).transformer.proj_out.weight)
    card = (dest / "README.md").read_text()
    assert "stored in fp16" in card and "the same verdict for" in card


def test_rounding_to_fp16_refuses_weights_beyond_its_range(tiny_pipeline):
    import torch

    from lab.model import round_weights_to_fp16

    with torch.no_grad():
        tiny_pipeline.transformer.proj_out.weight[0, 0] = 1e5
    first = next(iter(tiny_pipeline.transformer.state_dict().values()))  # the patch embedding, met before proj_out
    before = first.clone()
    with pytest.raises(ValueError, match=r"transformer.proj_out.weight holds values beyond fp16's range"):
        round_weights_to_fp16(tiny_pipeline)
    assert torch.equal(first, before) and not torch.equal(before, before.half().float())  # nothing was half done
