"""wmlab: world models that generalize (contextual DreamerV3 / DALI, and latent-action DINO-WM)."""

from wmlab.errors import WmlabError

__version__ = "0.1.0"
__all__ = ["WmlabError", "__version__"]
