"""Webhook delivery: building what a recipient receives (egress) and calling its webhook (sender)."""
