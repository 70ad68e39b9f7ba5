"""Training: the loop and its shared pieces, and one file per recipe, each registering itself.

The explicit imports below fill ``recipes``' registry (``snapsr train NAME``); a new recipe is
one module with ``@recipe("name", config=...)`` on its builder, and one name added here.
"""

from snapsr.train import gtasr, oftsr, rcod, teacher, vpd  # noqa: F401 - each registers its recipe
