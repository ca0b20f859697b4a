"""The SANA 1.5 lab: a linear diffusion transformer's growth, pruning, CAME-8bit and best-of-N,
on a procedurally rendered world small enough to train on a CPU."""

__version__ = "0.1.0"
