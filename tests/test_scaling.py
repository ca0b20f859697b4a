"""Best-of-N: SANA's tournament rule, exactly N judge calls, candidates independent of batching,
the same result across processes, and clear errors on bad input."""

import json

import numpy as np
import pytest
from conftest import launch_two_processes

from lab.bench.scaling import CountingJudge
from lab.judge import JudgeScores, OracleJudge
from lab.sampling import SamplerConfig
from lab.scaling import MAX_CANDIDATES, best_of_n, best_of_n_steps, play_match, rank, tournament

FAST = SamplerConfig(steps=2, batch_size=2)


def scores(p_yes, yes, no):
    return JudgeScores(np.array(p_yes, float), np.array(yes, float), np.array(no, float))


def test_match_rule_yes_beats_no_then_logits_decide():
    s = scores([0.9, 0.2, 0.8, 0.3], [2.0, 0.1, 3.0, 0.5], [0.1, 1.5, 0.2, 0.8])
    assert play_match(s, 0, 1).winner == 0 and play_match(s, 0, 1).reason == "yes beats no"
    assert play_match(s, 0, 2).winner == 2  # both yes: higher yes-logit
    assert play_match(s, 1, 3).winner == 3  # both no: lower no-logit


def test_tournament_of_n_candidates_plays_n_minus_one_matches_to_the_best():
    rng = np.random.default_rng(0)
    for n in (2, 4, 5, 16):
        yes, no = rng.normal(size=n), rng.normal(size=n)
        s = scores(1 / (1 + np.exp(no - yes)), yes, no)
        bracket, (winner,) = tournament(s)
        played = [m for r in bracket for m in r if m.b is not None]
        assert len(played) == n - 1
        ranking, _ = rank(s)
        assert ranking[0] == winner and sorted(ranking) == list(range(n))
        best = max(range(n), key=lambda i: (yes[i] > no[i], yes[i] if yes[i] > no[i] else -no[i]))
        assert winner == best


def test_score_and_topk_selections():
    s = scores([0.2, 0.9, 0.6, 0.7, 0.1], [0, 3, 1, 2, -1], [1, 0, 0.5, 0, 2])
    assert rank(s, "score")[0] == [1, 3, 2, 0, 4]
    ranking, bracket = rank(s, "topk", k=2)
    assert len(ranking) == 5 and ranking[0] == 1 and len(bracket) == 2  # 5 -> 3 -> 2 finalists
    with pytest.raises(ValueError, match="unknown selection"):
        rank(s, "best")
    with pytest.raises(ValueError, match="k = 0 finalists"):
        rank(s, "topk", k=0)  # tournament(until=0) would never end
    assert rank(s.take(slice(0, 0))) == ([], [])


def test_confident_yes_answers_are_ordered_by_margin_not_by_saturated_p_yes():
    # float32 sigmoid(20) and sigmoid(30) are both exactly 1.0; the margin still tells them apart
    yes, no = np.array([20.0, 30.0], np.float32), np.zeros(2, np.float32)
    s = JudgeScores(1 / (1 + np.exp(no - yes)), yes, no)
    assert s.p_yes[0] == s.p_yes[1] == 1.0
    for select in ("tournament", "topk", "score"):
        assert rank(s, select)[0] == [1, 0], select


def test_best_of_n_judges_each_candidate_exactly_once(tiny_pipeline):
    judge = CountingJudge(OracleJudge())
    result = best_of_n(tiny_pipeline, "a photo of a circle", 5, judge, sampler=FAST)
    assert judge.images == result.judge_calls == 5
    assert result.images.shape == (5, 64, 64, 3) and sorted(result.ranking) == list(range(5))
    assert result.winner == result.ranking[0] and sum(m.b is not None for r in result.bracket for m in r) == 4
    assert result.model_calls == 5 * 2 * 2  # candidates x steps x CFG rows
    assert json.dumps(result.to_json())


def test_candidate_is_the_same_image_alone_or_in_a_batch(tiny_pipeline):
    batched = best_of_n(
        tiny_pipeline, "a photo of a circle", 3, OracleJudge(), seed=7, sampler=SamplerConfig(steps=2, batch_size=3)
    )
    alone = best_of_n(tiny_pipeline, "a photo of a circle", 1, OracleJudge(), seed=9, sampler=FAST)
    np.testing.assert_array_equal(batched.images[2], alone.images[0])  # candidate 2 of seed 7 is seed 9


def test_streamed_best_of_n_grows_by_batch_then_ranks(tiny_pipeline):
    snapshots = [
        (len(r.images), r.done)
        for r in best_of_n_steps(tiny_pipeline, "a photo of a circle", 5, OracleJudge(), sampler=FAST)
    ]
    assert snapshots == [(2, False), (4, False), (5, False), (5, True)]


@pytest.mark.parametrize("n", [0, -3, MAX_CANDIDATES + 1, 2.5])
def test_best_of_n_refuses_a_bad_n(tiny_pipeline, n):
    with pytest.raises(ValueError, match="N = .* expected an integer from 1"):
        best_of_n(tiny_pipeline, "a photo of a circle", n, OracleJudge(), sampler=FAST)


def test_best_of_n_refuses_an_empty_prompt_and_an_unknown_selection(tiny_pipeline):
    with pytest.raises(ValueError, match="empty prompt"):
        best_of_n(tiny_pipeline, "  ", 2, OracleJudge(), sampler=FAST)
    with pytest.raises(ValueError, match="unknown selection"):
        best_of_n(tiny_pipeline, "a photo of a circle", 2, OracleJudge(), select="vote", sampler=FAST)


def test_two_processes_split_the_candidates_and_agree(tiny_pipeline_dir, tiny_pipeline, tmp_path):
    from scaling_worker import BrightnessJudge, image_digests

    r = launch_two_processes("scaling_worker.py", str(tiny_pipeline_dir), str(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in range(2)]
    judge = CountingJudge(BrightnessJudge())
    single = best_of_n(tiny_pipeline, "a photo of a circle", 5, judge, seed=3, sampler=FAST)
    assert judge.images == 5 and single.ranking != list(range(5))  # a ranking the gather order could spoil
    for rep in reports:
        assert rep["world_size"] == 2 and rep["judge_calls"] == 5 and rep["n_images"] == 5
        assert rep["ranking"] == single.ranking
        assert rep["image_digests"] == image_digests(single.images)  # candidate i in place i


def test_a_model_retrained_under_the_same_name_gets_its_own_sample_cache(tiny_pipeline_dir, tmp_path):
    import shutil

    import torch

    from lab.judge_data import sample_bank
    from lab.model import load_pipeline
    from lab.sampling import model_cache_dir

    model = tmp_path / "S"
    shutil.copytree(tiny_pipeline_dir, model)
    first = model_cache_dir(tmp_path / "cache", model)
    assert first == model_cache_dir(tmp_path / "cache", model) and first.name.startswith(str(model).replace("/", "_"))
    bank = sample_bank(str(model), 2, seed=0, cache=tmp_path / "cache", sampler=SamplerConfig(steps=2), progress=False)
    assert any(first.glob("*.npz"))

    transformer = load_pipeline(model).transformer  # "retrained": other weights under the same name
    with torch.no_grad():
        transformer.proj_out.weight.add_(0.5)
    transformer.save_pretrained(model / "transformer")
    second = model_cache_dir(tmp_path / "cache", model)
    assert second != first
    again = sample_bank(str(model), 2, seed=0, cache=tmp_path / "cache", sampler=SamplerConfig(steps=2), progress=False)
    assert any(second.glob("*.npz")) and not np.array_equal(again.images, bank.images)  # generated anew


def test_selection_curves_perfect_judge_meets_the_oracle_and_random_is_the_mean():
    from lab.experiments.scaling import selection_curves

    rng = np.random.default_rng(0)
    tasks = ["counting", "position"] * 6  # 12 prompts
    correct = rng.random(12 * 4) < 0.3
    perfect = JudgeScores(correct.astype(float), correct.astype(float), 1 - correct.astype(float))
    curves = selection_curves(perfect, correct, tasks, n_max=4, ns=[1, 2, 4])
    by = {sel: [r["overall"] for r in rs] for sel, rs in curves.items()}
    assert by["judge"] == pytest.approx(by["oracle"])  # picking any candidate it passes = the oracle's bound
    assert by["random"][0] == pytest.approx(by["judge"][0])  # at N=1 there is nothing to pick
    assert by["random"] == pytest.approx([by["random"][0]] * 3)  # random choice does not improve with N
    assert by["oracle"][0] <= by["oracle"][1] <= by["oracle"][2]
    backwards = JudgeScores(1 - perfect.p_yes, perfect.no_logit, perfect.yes_logit)  # prefers the failures
    worst = [r["overall"] for r in selection_curves(backwards, correct, tasks, 4, [1, 4])["judge"]]
    assert worst[1] < worst[0]


def test_counting_picks_shows_a_judge_that_prefers_one_object_too_many():
    from lab.experiments.scaling import counting_picks, counting_table

    # two counting prompts and one of another task, 4 candidates each; the judge likes +1 best
    errors = [0, 1, 0, -1] + [1, 0, 0, 0] + [None] * 4
    p_yes = [0.6 if e == 0 else 0.9 if e == 1 else 0.1 for e in errors[:8]] + [0.5] * 4
    logit = np.log(np.array(p_yes) / (1 - np.array(p_yes)))
    picks = counting_picks(scores(p_yes, logit, np.zeros(12)), errors, n_max=4)
    assert picks["prompts"] == 2
    rows = {r["error"]: r for r in picks["by_error"]}
    assert set(rows) == {-1, 0, 1}
    assert rows[0]["share_of_candidates"] == 5 / 8 and rows[1]["share_of_judge_winners"] == 1.0
    assert rows[1]["p_yes_mean"] == pytest.approx(0.9) and rows[-1]["says_yes"] == 0.0
    table = counting_table({"config": {"n_max": 4}, "models": {"S": {"counting": picks}}})
    assert "| S | +1 | 0.25 | 1.00 | 0.90 | 1.00 |" in table
    assert counting_table({"config": {"n_max": 4}, "models": {"S": {}}}) == ""  # a run from before the breakdown


def test_frontier_marks_only_the_points_nothing_else_beats_on_cost_and_accuracy():
    from lab.experiments.scaling import ScalingConfig, check_targets, frontier

    def curve(*overall):
        return {"judge": [{"n": n, "overall": o} for n, o in zip((1, 2, 16), overall)]}

    metrics = {
        "timing": {"generate_seconds_per_image": {"S": 1.0, "L": 2.0}, "judge_seconds_per_image": 0.0},
        "models": {
            "S": {"blocks": 8, "curves": curve(0.5, 0.5, 0.55)},
            "L": {"blocks": 24, "curves": curve(0.5, 0.6, 0.85)},
        },
    }
    rows = {(r["model"], r["n"]): r for r in frontier(ScalingConfig(), metrics)}
    assert rows[("S", 1)]["pareto"] and not rows[("S", 2)]["pareto"]  # same accuracy for twice the seconds
    assert not rows[("L", 1)]["pareto"]  # S@1: as good for half the seconds
    assert rows[("L", 2)]["pareto"] and rows[("L", 16)]["pareto"] and not rows[("S", 16)]["pareto"]  # L@2 beats it
    targets = check_targets(ScalingConfig(), metrics)
    assert targets["L"]["best_of_16_target_met"] and targets["L"]["gain_at_16"] == pytest.approx(0.35)
    assert targets["S"]["monotone_in_n"] and not targets["S"]["gain_target_met"]


def test_a_pruned_model_re_ranked_under_the_same_name_gets_its_own_sample_cache(tiny_pipeline_dir, tmp_path):
    import shutil

    from lab.pruning import ImportanceTable
    from lab.sampling import model_cache_dir

    model = tmp_path / "L"
    shutil.copytree(tiny_pipeline_dir, model)
    blocks = json.loads((model / "transformer" / "config.json").read_text())["num_layers"]
    ImportanceTable(np.linspace(0.1, 0.5, blocks)[:, None], np.array([500.0])).save(model / "importance.json")
    full, pruned = model_cache_dir(tmp_path, model), model_cache_dir(tmp_path, f"{model}@1")
    ImportanceTable(np.linspace(0.5, 0.1, blocks)[:, None], np.array([500.0])).save(model / "importance.json")
    assert model_cache_dir(tmp_path, f"{model}@1") != pruned  # another ranking keeps other blocks
    assert model_cache_dir(tmp_path, model) == full  # the unpruned model's samples do not depend on it
