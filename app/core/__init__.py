"""The engine. Nothing in this package imports Qt: the GUI and the CLI are thin front ends.

Data flow, one module per stage:
  walk.py -> library.py (diff) -> decode.py (content.py) -> model.py (networks.py) -> library.py (upsert)
  -> grouping.py (search.py, verify.py; catalog.py remembers outcomes) -> ranking.py
  -> report.py; trash.py acts on decisions.
pipeline.py strings the stages together; progress.py is the progress/cancel contract.
"""
