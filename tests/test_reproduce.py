"""`lab reproduce`: every notebook in dependency order, unchanged inputs skipped, a failure named by
notebook and cell with earlier results intact; reports/README.md generated from the metrics JSON."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

from lab import report_index, reproduce
from lab.provenance import REPO_ROOT
from lab.reproduce import RECORD, REPORTS, Notebook, ReproduceError


def _notebook(path, *cells: str) -> str:
    """A notebook file: a `parameters` cell (mode, out_dir), then `cells`."""
    nb = nbformat.v4.new_notebook(
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    )
    params = nbformat.v4.new_code_cell('mode = "quick"\nout_dir = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params] + [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return str(path)


def _fake_execute(calls: list):
    """Stands in for papermill: records the call and writes the executed copy."""

    def execute(nb, mode, folder):
        calls.append(nb.name)
        (Path(folder) / f"{nb.name}.ipynb").parent.mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{nb.name}.ipynb").write_text("{}")
        return {"name": nb.name, "seconds": 0.0}

    return execute


def test_plan_runs_dependencies_first_whatever_the_order_asked():
    assert reproduce.plan(["pruning", "block_importance"]) == ["block_importance", "pruning"]
    everything = reproduce.plan()
    assert set(everything) == set(reproduce.REGISTRY)
    assert everything.index("block_importance") < everything.index("pruning")


def test_plan_names_an_unknown_experiment():
    with pytest.raises(ValueError, match="unknown experiments \\['nosuch'\\]; expected some of"):
        reproduce.plan(["nosuch"])


@pytest.mark.parametrize("out", [REPORTS, REPORTS / "came8bit"])
def test_quick_runs_never_write_into_the_committed_reports(out):
    with pytest.raises(ValueError, match="quick runs are smoke tests"):
        reproduce.output_root("quick", out)


def test_quick_mode_into_reports_is_one_line_and_exit_2(run_lab):
    code, _, err = run_lab("reproduce", "--mode", "quick", "--out", REPORTS)
    assert code == 2 and err.count("\n") == 1 and "quick runs are smoke tests" in err


def test_quick_came8bit_runs_end_to_end_then_skips_when_unchanged_and_force_reruns(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert reproduce.reproduce("quick", ["came8bit"], out, progress=False) == {"came8bit": "ran"}
    folder = out / "came8bit"
    assert (folder / "came8bit.ipynb").is_file() and (folder / "metrics.json").is_file()
    assert list(folder.glob("*.png")), "the notebook drew no figure"
    assert str(REPO_ROOT) not in (folder / "came8bit.ipynb").read_text(), "the executed notebook names this checkout"
    record = json.loads((folder / RECORD).read_text())
    assert record["inputs"]["parameters"] == {"mode": "quick", "out_dir": str(folder)} and record["wall_seconds"] > 0
    index = (out / report_index.INDEX).read_text()
    assert "came8bit/memory.png" in index and "Quick mode" in index and "Not run yet" in index  # others not run

    assert reproduce.reproduce("quick", ["came8bit"], out, progress=False) == {"came8bit": "skipped"}
    calls: list = []
    monkeypatch.setattr(reproduce, "execute", _fake_execute(calls))  # --force reruns: no need to wait for it again
    assert reproduce.reproduce("quick", ["came8bit"], out, force=True, progress=False) == {"came8bit": "ran"}
    assert calls == ["came8bit"]


def test_a_changed_notebook_or_checkpoint_reruns_only_what_it_feeds(tmp_path, monkeypatch):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "weights.bin").write_bytes(b"v1")
    first, second = _notebook(tmp_path / "a.ipynb", "1"), _notebook(tmp_path / "b.ipynb", "2")
    monkeypatch.setattr(
        reproduce, "REGISTRY", {"a": Notebook("a", first, "-"), "b": Notebook("b", second, "-", ("a",), (str(ckpt),))}
    )
    calls: list = []
    monkeypatch.setattr(reproduce, "execute", _fake_execute(calls))
    run = lambda: reproduce.reproduce("quick", None, tmp_path / "out", progress=False)  # noqa: E731
    assert run() == {"a": "ran", "b": "ran"} and calls == ["a", "b"]
    assert run() == {"a": "skipped", "b": "skipped"}
    (ckpt / "weights.bin").write_bytes(b"v2")
    assert run() == {"a": "skipped", "b": "ran"}
    _notebook(tmp_path / "a.ipynb", "1 + 1")
    assert run() == {"a": "ran", "b": "skipped"}


def test_a_failing_notebook_names_itself_and_its_cell_and_keeps_earlier_results(tmp_path, monkeypatch):
    good = _notebook(tmp_path / "good.ipynb", "from pathlib import Path\nPath(out_dir, 'result.txt').write_text('ok')")
    bad = _notebook(tmp_path / "bad.ipynb", "x = 1", "raise ValueError('boom')")
    monkeypatch.setattr(
        reproduce, "REGISTRY", {"good": Notebook("good", good, "-"), "bad": Notebook("bad", bad, "-", ("good",))}
    )
    out = tmp_path / "out"
    with pytest.raises(
        ReproduceError,
        match=r"notebook bad failed in cell \d+ \("
        r"\"raise ValueError\('boom'\)\"\): ValueError: boom",
    ) as error:
        reproduce.reproduce("quick", None, out, progress=False)
    assert "\n" not in str(error.value)
    assert (out / "good" / "result.txt").read_text() == "ok" and (out / "good" / RECORD).is_file()
    assert (out / "bad" / "bad.failed.ipynb").is_file() and not (out / "bad" / "bad.ipynb").exists()
    assert not (out / "bad" / RECORD).exists()


def test_workers_run_notebooks_in_separate_processes_after_their_dependencies(tmp_path, monkeypatch):
    stamp = (
        "import os, time\nfrom pathlib import Path\nPath(out_dir, 'stamp').write_text(f'{os.getppid()} {time.time()}')"
    )
    paths = {n: _notebook(tmp_path / f"{n}.ipynb", stamp) for n in "abc"}
    monkeypatch.setattr(
        reproduce,
        "REGISTRY",
        {
            "a": Notebook("a", paths["a"], "-"),
            "b": Notebook("b", paths["b"], "-"),
            "c": Notebook("c", paths["c"], "-", ("a", "b")),
        },
    )
    out = tmp_path / "out"
    assert reproduce.reproduce("quick", None, out, workers=2, progress=False) == {"a": "ran", "b": "ran", "c": "ran"}
    parent, started = zip(*((int(p), float(t)) for p, t in ((out / n / "stamp").read_text().split() for n in "abc")))
    assert os.getpid() not in parent, "a kernel was started by this process, not a worker"
    assert started[2] > max(started[:2])


def test_full_mode_names_a_missing_checkpoint_before_running(tmp_path, monkeypatch):
    nb = _notebook(tmp_path / "a.ipynb")
    monkeypatch.setattr(reproduce, "REGISTRY", {"a": Notebook("a", nb, "-", (), ("checkpoints/nosuch",))})
    with pytest.raises(ReproduceError, match="a reads checkpoints/nosuch, which does not exist"):
        reproduce.reproduce("full", None, tmp_path / "out", progress=False)


def test_index_says_not_run_yet_for_an_experiment_without_metrics(tmp_path):
    shutil.copytree(REPORTS / "pruning", tmp_path / "pruning")
    text = report_index.index_markdown(tmp_path)
    metrics = json.loads((REPORTS / "pruning" / "metrics.json").read_text())
    v, source = metrics["variants"][0], metrics["source"]["geneval"]  # a row of the pruning table, from the data
    kept = ",".join(map(str, v["kept"]))
    row = f"| {v['depth']} | {v['method']} | {kept} | {v['before']:.3f} | {v['before'] - source:+.3f} | {v['after']:.3f} |"
    assert row in text
    assert "![pruning_curves](pruning/pruning_curves.png)" in text
    for name in set(reproduce.REGISTRY) - {"pruning"}:
        assert f"Not run yet: no `{name}/" in text


def test_committed_reports_index_is_generated_from_the_committed_metrics():
    committed = (REPORTS / report_index.INDEX).read_text()
    assert committed == report_index.index_markdown(REPORTS), (
        "reports/README.md is stale: run `lab reproduce --index-only`"
    )


def test_main_readme_links_the_reports_index():
    assert "reports/README.md" in (REPO_ROOT / "README.md").read_text()
