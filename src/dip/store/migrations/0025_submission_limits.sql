-- The IF-021 submission limits of E2E 6.1 (docs/security.md "IF-021 submission limits"): per
-- data service, its mode (off, soft: reported; hard: refused with 429) and portfolio (distinct
-- MPANs it submits on IF-021: measured daily by the portfolio job, or set by the operator); and
-- the messages it submitted per clock hour, shared by every API node.
CREATE TABLE submission_limits (
    participant_id TEXT PRIMARY KEY,
    mode TEXT NOT NULL,
    portfolio BIGINT,
    measured_portfolio BIGINT,
    measured_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE TABLE submission_counts (
    participant_id TEXT NOT NULL,
    hour BIGINT NOT NULL,
    messages BIGINT NOT NULL,
    over_soft BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (participant_id, hour)
)
