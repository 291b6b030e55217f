"""The DVAE (Helminger et al. 2018), now the ``dvae`` model family in :mod:`pyro_dvae.models.dvae`.

Kept so that ``from pyro_dvae.model import DVAE, SITE_F, ...`` keeps working.
"""

from .models.base import FRAMES_DIM, PLATE_FRAMES, PLATE_SETS, SETS_DIM, SITE_F, SITE_X, SITE_Z
from .models.dvae.model import DVAE

__all__ = ["DVAE", "FRAMES_DIM", "PLATE_FRAMES", "PLATE_SETS", "SETS_DIM", "SITE_F", "SITE_X", "SITE_Z"]
