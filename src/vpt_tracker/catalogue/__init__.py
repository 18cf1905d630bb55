"""Catalogues: curated README lists, parsed losslessly, stored, edited and rendered back."""

from vpt_tracker.catalogue.markdown import Document, NewEntry, ParsedEntry, Problem, lint, parse

__all__ = ["Document", "NewEntry", "ParsedEntry", "Problem", "lint", "parse"]
