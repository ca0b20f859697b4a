"""Experiment logic behind the notebooks: each module runs one of the paper's experiments from a
config and returns (and writes) a metrics dict; the notebook only tells the story and draws."""
