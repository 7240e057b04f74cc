"""The engine. Nothing in this package imports Qt: the GUI and the CLI are thin front ends.

Data flow, one module per stage:
  walk.py -> library.py (diff, with catalog.py) -> reading.py (decode.py, content.py, in worker
  processes) -> model.py (networks.py) -> library.py (upsert) -> pairs.py: candidates.py (search.py)
  -> verification.py (verify.py; the catalog remembers outcomes) -> grouping.py (linkage)
  -> ranking.py -> report.py; trash.py acts on decisions. groups_so_far.py: the window's groups
  while a scan reads.
pipeline.py strings the stages together; progress.py is the progress/cancel contract;
domain.py holds the records the stages share; session.py opens the model and the library;
pools.py is every pool of worker processes (spawn, priority, crash isolation, retry, terminate).
"""
