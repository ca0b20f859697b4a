"""Exporting a run into the zoo: pipeline + config + log + GenEval-mini + model card."""

import json

import pytest

from lab import world
from lab.model import load_pipeline
from lab.train import TrainConfig, train
from lab.zoo import export_run


def test_export_writes_a_loadable_pipeline_with_card_log_and_geneval(tiny_vae_dir, tmp_path):
    train(TrainConfig(size="tiny", vae=str(tiny_vae_dir), steps=2, batch_size=2, warmup_steps=1), tmp_path / "run",
          progress=False)
    prompts = tmp_path / "two.jsonl"
    world.write_prompts(world.load_prompts("quick")[:2], prompts)
    scores = export_run(tmp_path / "run", tmp_path / "zoo" / "T", "T", "A test model.", "lab train ...",
                        prompt_sets=(str(prompts),), images_per_prompt=1)
    dest = tmp_path / "zoo" / "T"
    assert load_pipeline(dest).transformer.config.num_layers == 2
    card = (dest / "README.md").read_text()
    assert "GenEval-mini" in card and "lab train ..." in card and "overall" in card
    report = json.loads((dest / "geneval_two.json").read_text())
    assert report["n_images"] == 2 and scores["two"] == report["overall"]
    assert (dest / "train_log.jsonl").is_file() and (dest / "train_config.yaml").is_file()


def test_export_refuses_an_unfinished_run(tmp_path):
    with pytest.raises(ValueError, match="no finished pipeline"):
        export_run(tmp_path, tmp_path / "dest", "X", "", "")
