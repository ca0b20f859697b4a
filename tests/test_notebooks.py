"""Every notebook runs end to end under papermill in its `quick` mode, and is stored without outputs;
`lab reproduce` knows every notebook (so the test command, and CI, run all that it runs)."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


def test_reproduce_registry_and_notebooks_folder_list_the_same_notebooks():
    from lab.reproduce import REGISTRY

    assert sorted(nb.path for nb in REGISTRY.values()) == NOTEBOOKS
    assert all(nb.path.stem == name for name, nb in REGISTRY.items()), "an experiment is named after its notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs_and_tags_its_parameters(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert "parameters" in code[0].get("metadata", {}).get("tags", []), "first code cell must be tagged 'parameters'"
    assert 'mode = "quick"' in "".join(code[0]["source"]), "parameters must default to the quick mode"
    assert all(not c.get("outputs") for c in code), "executed copies belong under reports/, not notebooks/"


@pytest.mark.slow  # the longest tests of the suite: `pytest -m "not slow"` leaves them out
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode_under_papermill(path, tmp_path):
    import papermill

    papermill.execute_notebook(
        str(path),
        str(tmp_path / path.name),
        parameters={"mode": "quick", "out_dir": str(tmp_path / "out")},
        cwd=str(path.parent.parent),
        kernel_name="python3",
        progress_bar=False,
    )
    assert any((tmp_path / "out").rglob("*.png")), "the notebook drew no figure"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_papermill_reads_every_parameter_line(path, caplog):
    import papermill

    with caplog.at_level("WARNING", logger="papermill"):
        names = papermill.inspect_notebook(str(path))
    assert "mode" in names and not [r for r in caplog.records if "Unable to parse" in r.getMessage()]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_takes_its_config_from_the_presets_and_calls_its_experiment_module(path):
    source = "".join("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
    name = path.stem
    assert f"preset({name}." in source or "preset(scaling.ScalingConfig" in source, "cfg = preset(...)"
    assert f"{name}.run(cfg, out" in source and f"{name}.figures(metrics" in source
    assert "def " not in source, "a helper defined in a notebook belongs in lab/"
