"""``dewey embed --ray``: the same job as ``dewey embed``, on a Ray cluster with Ray Data.

Needs the ``ray`` extra (``pip install 'dewey-core[ray]'``); nothing imports Ray until
:func:`embed_dataset` runs. See :mod:`dewey_core.distributed.pipeline` for how the work is split
and why every document is stored exactly once.

Example (a local Ray with two CPU replicas; the store is the one ``dewey embed`` writes):
    >>> from dewey_core.distributed import embed_dataset               # doctest: +SKIP
    >>> report = embed_dataset("notes/", "notes.dewey", model="infgrad/dewey_en_beta",
    ...                        workers=2)                              # doctest: +SKIP
    >>> print(report.summary())                                        # doctest: +SKIP
    dewey embed: 120 documents (1873 chunks) embedded now, 120 stored in notes.dewey
"""

from dewey_core.distributed.pipeline import EXIT_ONCE_ENV, embed_dataset

__all__ = ["EXIT_ONCE_ENV", "embed_dataset"]
