-- The recipients the DIP found for a message, as A0 lists them (comma-separated participant IDs),
-- archived with the message so delivery need not gather them from the deliveries table.
ALTER TABLE messages ADD COLUMN a0_secondary TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN a0_always TEXT NOT NULL DEFAULT '';
