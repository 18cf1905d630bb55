"""Reviewing candidates: the queue logic (`queue`) and the terminal app over it (`app`)."""

from vpt_tracker.review.queue import Conflict, Filter, QueueItem, ReviewQueue, resolve_reviewer

__all__ = ["Conflict", "Filter", "QueueItem", "ReviewQueue", "resolve_reviewer"]
