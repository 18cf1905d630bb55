"""Publishing a catalogue: git branch and commit, push, and the GitHub pull request.

`publisher` is the use case; `git` and `github` are its two edges, and `upstream` takes in
a README that changed on the remote since import.
"""

from vpt_tracker.publish.publisher import Outcome, Plan, Publisher, dry_run

__all__ = ["Outcome", "Plan", "Publisher", "dry_run"]
