"""The SANA 1.5 lab: a linear diffusion transformer's growth, pruning, CAME-8bit and best-of-N,
on a procedurally rendered world small enough to train on a CPU."""

import logging

# diffusers imports bitsandbytes, whose CPU backend logs a warning about an optional kernel package
# on import; the lab never uses that kernel, so the message is noise. Set before any import of it.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

__version__ = "0.1.0"
