"""Accepting a batch: the schema stage, Level 1 rules, addressing and routing, the MPAN registry."""
