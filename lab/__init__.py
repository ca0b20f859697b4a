"""The SANA 1.5 lab: a linear diffusion transformer's growth, pruning, CAME-8bit and best-of-N,
on a procedurally rendered world small enough to train on a CPU."""

import logging

# diffusers imports bitsandbytes, whose CPU backend logs a warning about an optional kernel package
# on import; the lab never uses that kernel, so the message is noise. Set before any import of it.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

__version__ = "0.1.0"

# The public API: the names the app, the notebooks and a user's script need, importable as
# `lab.best_of_n` etc. Loaded on first use, so `import lab` stays light (no torch until needed).
_API = {
    "load_model": "lab.zoo:resolve_model",  # "S", "L", "L@12" or any SanaPipeline directory
    "generate": "lab.sampling:generate",
    "SamplerConfig": "lab.sampling:SamplerConfig",
    "evaluate": "lab.geneval:evaluate",
    "evaluate_image": "lab.geneval:evaluate_image",
    "load_judge": "lab.judge:load_judge",
    "best_of_n": "lab.scaling:best_of_n",
    "grow_depth": "lab.growth:grow_depth",
    "block_importance": "lab.pruning:block_importance",
    "prune_depth": "lab.pruning:prune_depth",
    "load_pruned": "lab.pruning:load_pruned",
    "CAME8bit": "lab.optim:CAME8bit",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'lab' has no attribute {name!r}; the public API is {__all__}")
    import importlib

    module, attr = _API[name].split(":")
    return getattr(importlib.import_module(module), attr)
