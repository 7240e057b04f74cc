"""The PySide6 front end: widgets and workers only; every decision lives in app.core."""
