-- Where the CommonBlock object lies in the stored payload (byte offsets), found by the schema
-- stage: delivery adds A0 and D0 to it and copies the rest of the message as stored.
-- NULL (messages stored before, or a payload whose layout could not be told): delivery reads
-- the whole payload.
ALTER TABLE messages ADD COLUMN common_start INTEGER;
ALTER TABLE messages ADD COLUMN common_end INTEGER;
