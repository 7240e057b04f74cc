"""The engine. Nothing in this package imports Qt: the GUI and the CLI are thin front ends.

Data flow, one module per stage:
  walk.py -> library.py (diff) -> decode.py -> fingerprint.py (+ model.py) -> library.py (upsert)
  -> grouping.py (search + verify) -> ranking.py -> report.py; trash.py acts on decisions.
pipeline.py strings the stages together; progress.py is the progress/cancel contract.
"""
