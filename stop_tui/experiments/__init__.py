"""Experiments: sweeps of ordinary runs over tasks x models x seeds x settings variants.

Between the engine and the front ends. ``spec`` parses and checks a sweep file,
``grid`` expands it into cells, ``record`` keeps the sweep in the workspace's git
(``refs/stop-sweeps/<id>``), ``budget`` shares sweep-wide caps between cells,
``controller`` runs the cells concurrently with one approval queue, ``results``
reads what the cells recorded, ``stats`` computes the paper's statistics,
``figures`` draws them (matplotlib, imported only when a figure is drawn) and
``report`` writes everything to a directory.
"""
