"""Named SQL (queries.sql), written once in PostgreSQL's SQL; see dip.store.queries."""
