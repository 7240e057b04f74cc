"""Doppel: a desktop photo-library cleaner that finds exact and edited copies of photos."""

__version__ = "0.1.0"
APP_NAME = "Doppel"
