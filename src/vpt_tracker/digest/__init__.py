"""The weekly digest email: `build` gathers and renders it, `send` delivers it once per week."""

from vpt_tracker.digest.build import Digest, Week, build_digest, parse_week, render, to_message
from vpt_tracker.digest.send import DigestNotSent, SendResult, deliver, send_digest, send_due

__all__ = [
    "Digest",
    "DigestNotSent",
    "SendResult",
    "Week",
    "build_digest",
    "deliver",
    "parse_week",
    "render",
    "send_digest",
    "send_due",
    "to_message",
]
