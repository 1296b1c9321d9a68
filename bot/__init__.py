"""Föreningslotsen: wiring, configuration and the command line."""
