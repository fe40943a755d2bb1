"""Egress: serving the delivery queues: claim, build each recipient's copy, call, settle."""
