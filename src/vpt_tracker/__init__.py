"""vpt-tracker: keeps curated research-paper lists on visual prompt tuning up to date."""

__version__ = "0.1.0"
