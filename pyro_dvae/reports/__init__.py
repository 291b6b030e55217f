"""Reports on a trained run: folders of PNG figures with an ``index.md`` and a ``results.json``.

:func:`sample_report` (``pyro-dvae sample``, :mod:`.sample`) shows what the prior generates; :func:`inspect_report`
(``pyro-dvae inspect``, :mod:`.inspect`) explores the posterior on real sets: the paper's latent manifold (Fig. 3)
and dynamics trace (Fig. 4b), reconstructions, swaps, the consistency of f across frame subsets,
interpolation of f, and an ArviZ export of posterior draws. The queries live in
:mod:`pyro_dvae.posterior` and the figures in :mod:`pyro_dvae.plotting`; this module chooses the
sets, seeds every random choice, and writes the files. Sections a run's family cannot fill
(no prior to sample, no guide to draw from) are left out and say so in ``index.md``.

Same seed, same run, same data: byte-identical PNG files and identical arrays.
"""

from .core import INDEX_FILE, RESULTS_FILE, Report, dataframe_table, markdown_table, output_folder, seeded
from .inspect import inspect_report
from .sample import sample_report

__all__ = ["INDEX_FILE", "RESULTS_FILE", "Report", "dataframe_table", "inspect_report", "markdown_table",
           "output_folder", "sample_report", "seeded"]
