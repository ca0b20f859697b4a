"""What produced a result is written with it, and never as one machine's directories."""

import json
from pathlib import Path

from lab.provenance import REPO_ROOT, portable, write_json


def test_results_record_paths_inside_the_checkout_relative_to_it(tmp_path):
    result = {
        "model": REPO_ROOT / "checkpoints" / "L",
        "runs": [str(REPO_ROOT / "runs" / "x")],
        "outside": str(tmp_path),
        "note": "checkpoints/S",
        "n": 3,
    }
    written = json.loads(write_json(result, tmp_path / "r.json").read_text())
    assert written["model"] == str(Path("checkpoints", "L")) and written["runs"] == [str(Path("runs", "x"))]
    assert written["outside"] == str(tmp_path) and written["note"] == "checkpoints/S" and written["n"] == 3
    assert "commit" in written["provenance"]
    assert portable((REPO_ROOT / "a",)) == ["a"]


def test_saved_configs_record_checkout_paths_relative_to_it(tmp_path):
    from lab.config import load_config, save_config
    from lab.train import TrainConfig

    save_config(TrainConfig(init_from=str(REPO_ROOT / "runs" / "L_init")), tmp_path / "c.yaml")
    assert load_config(TrainConfig, tmp_path / "c.yaml").init_from == str(Path("runs", "L_init"))


def test_repo_path_finds_checkout_paths_from_any_working_directory(tmp_path, monkeypatch):
    from lab.provenance import repo_path

    monkeypatch.chdir(tmp_path)
    assert repo_path("checkpoints/S") == REPO_ROOT / "checkpoints" / "S"
    (tmp_path / "here").mkdir()
    assert repo_path("here") == Path("here") and repo_path(tmp_path) == tmp_path


def test_quick_mode_notes_say_smoke_test_and_full_mode_prints_nothing():
    from lab.provenance import SMOKE_TEST, smoke_test_note

    assert SMOKE_TEST in smoke_test_note("quick") and smoke_test_note("full") == ""


def test_a_quick_runs_temporary_work_directory_is_removed_when_the_process_exits(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    code = "from lab.experiments import work_directory; w = work_directory(); (w / 'x').write_text('1'); print(w)"
    path = Path(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip())
    assert path.name.startswith("lab-") and not path.exists()
    from lab.experiments import work_directory
    from lab.provenance import REPO_ROOT

    assert work_directory("runs/pruning") == REPO_ROOT / "runs/pruning"  # a given work_dir is kept: resumable
    assert work_directory(str(tmp_path)) == tmp_path


def test_temporary_directories_of_killed_processes_are_removed_by_the_next_quick_run(tmp_path, monkeypatch):
    import subprocess
    import sys
    import tempfile

    from lab import experiments

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"lab-test-{dead.stdout.strip()}-abc"
    stale.mkdir()
    fresh = experiments.temporary_directory("lab-test-")
    assert not stale.exists() and fresh.exists()
    experiments.remove_temporary_directories()
    assert not fresh.exists()


def test_public_api_names_resolve_lazily():
    import subprocess
    import sys

    code = (
        "import sys, lab; assert 'torch' not in sys.modules; print(sorted(n for n in lab.__all__ if getattr(lab, n)))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    import lab

    assert lab.best_of_n.__module__ == "lab.scaling" and lab.load_model.__name__ == "resolve_model"
