"""memento: teach language models to manage their own context (MEMENTO, arXiv 2604.09852).

A MEMENTO model reasons in blocks, closes each block with a dense summary (a memento), and the
block is then evicted from the KV cache. `memento.attention` owns the rule of which tokens each
token may see; training, inference, the simulator and the server all ask it.
"""

from memento.config import MementoConfig
from memento.format import SpecialIds, Trace, TraceFormatError

__version__ = "0.1.0"
__all__ = ["MementoConfig", "SpecialIds", "Trace", "TraceFormatError", "__version__"]
