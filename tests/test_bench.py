"""`lab bench NAME [options]` hands every option after NAME, --help included, to the benchmark."""

import json
import re

import pytest
import torch

from lab.cli import main


def test_bench_help_is_the_benchmarks_own(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", "world", "--help"])
    assert exit_info.value.code == 0
    assert "lab bench world" in capsys.readouterr().out


def test_unknown_benchmark_lists_the_available_ones(run_lab):
    code, _, err = run_lab("bench", "nosuch")
    assert code == 2 and re.search(r"^lab bench: error: .*'nosuch'.*geneval.*world", err)


def test_bench_help_lists_the_benchmarks(run_lab):
    code, out, _ = run_lab("bench", "--help")
    assert code == 0 and all(name in out for name in ("geneval", "importance", "optim", "sample", "train", "world"))


def test_bench_scaling_counts_exactly_n_judge_calls(tiny_pipeline_dir, tmp_path):
    from lab.bench import scaling

    threads = torch.get_num_threads()
    try:
        result = scaling.main(
            ["--quick", "--model", str(tiny_pipeline_dir), "--judge", "oracle", "--out", str(tmp_path / "s.json")]
            + ["--threads", "1"]
        )
    finally:
        torch.set_num_threads(threads)
    assert result["judge_calls"] == {"1": 1, "4": 4} and result["judge_calls_equal_n"]
    assert result["per_candidate_s_best_of_n"] > 0
    assert json.loads((tmp_path / "s.json").read_text())["provenance"]["cpu_threads"] == 1  # pinned, and said


def test_bench_threads_must_not_be_negative():
    from lab.bench._timing import pin_threads

    with pytest.raises(ValueError, match="--threads -2: expected a positive number"):
        pin_threads(-2)


def test_bench_judge_reports_reliability_per_split(tiny_pipeline_dir, tmp_path):
    from lab.bench import judge

    result = judge.main(
        [
            "--quick",
            "--model",
            str(tiny_pipeline_dir),
            "--judge",
            "oracle",
            "--cache",
            str(tmp_path / "c"),
            "--out",
            str(tmp_path / "j.json"),
        ]
    )
    assert set(result["splits"]) == {"quick", "novel"}
    # the oracle is the evaluator: it agrees with itself on every image
    assert result["splits"]["quick"]["overall"]["accuracy"] == 1.0 and result["images_per_s"] > 0


def test_bench_train_times_the_real_trainer_per_render_worker_count(tiny_vae_dir, tmp_path):
    from lab.bench import train

    result = train.main(
        [
            "--quick",
            "--vae",
            str(tiny_vae_dir),
            "--repeats",
            "1",
            "--data-workers",
            "0",
            "1",
            "--trainer-steps",
            "7",
            "--out",
            str(tmp_path / "t.json"),
        ]
    )
    runs = result["trainer_by_data_workers"]
    assert set(runs) == {"0", "1"} and runs["0"]["ratio_to_first"] == 1.0
    assert all(r["images_per_s"] > 0 and r["steps_measured"] == 2 for r in runs.values())


def test_bench_train_refuses_negative_worker_counts(tiny_vae_dir, tmp_path):
    from lab.bench import train

    with pytest.raises(SystemExit):
        train.main(["--quick", "--data-workers", "-1", "--out", str(tmp_path / "t.json")])
