"""Doppel's icon and desktop entry, installed as the package data ``app.resources`` (pyproject.toml
maps this folder there) and read through importlib.resources, so a non-editable install and a
bundle find them as well as a checkout does."""
