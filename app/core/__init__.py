"""The engine. Nothing in this package imports Qt: the GUI and the CLI are thin front ends.

Data flow, one module per stage:
  walk.py -> library.py (diff, with catalog.py) -> decode.py (content.py) -> model.py (networks.py)
  -> library.py (upsert) -> candidates.py (search.py) -> verification.py (verify.py; the catalog
  remembers outcomes) -> grouping.py (linkage) -> ranking.py -> report.py; trash.py acts on decisions.
pipeline.py strings the stages together; progress.py is the progress/cancel contract.
"""
