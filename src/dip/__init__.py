"""DIP: the Data Integration Platform for GB Market-wide Half-Hourly Settlement.

Senders post batches of JSON messages to a channel; the DIP validates them (Level 1),
stores them durably, and hands them on to the right recipients.
"""

__version__ = "0.1.0"
