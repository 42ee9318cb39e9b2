-- Full-text search with one row per ticket (rowid = ticket number): the subject, the contact's name and addresses,
-- and every message's text. A search is one FTS5 query walked in rowid order (newest ticket first) that stops as soon
-- as a page is full, instead of the union of two indexes (one row per ticket, one per message) materialized and
-- sorted. The table keeps its own copy of the indexed text (as the two tables it replaces did), so a row can be
-- rewritten or deleted without the caller knowing what was indexed. detail=none: the index records which tickets hold
-- a term, no positions (queries are ANDs of single words, never phrases). Prefix indexes for 1 to 12 letters: the
-- last word is a prefix, and FTS5 answers a prefix without its own index by merging the lists of every term that
-- starts with it (~250 ms for a word found in every ticket) where an indexed prefix is read lazily like a word and
-- the walk stops early. They make the index about 2.5 times bigger (~250 MB for a million short tickets).
CREATE VIRTUAL TABLE search_fts USING fts5(
    subject, contact, body,
    tokenize = 'unicode61 remove_diacritics 2', prefix = '1 2 3 4 5 6 7 8 9 10 11 12', detail = none
);
-- Backfill: subject and contact as the old ticket index held them; the texts of the ticket's messages, except for
-- an anonymized ticket, whose message texts were already out of the index.
INSERT INTO search_fts (rowid, subject, contact, body)
    SELECT t.number, coalesce(tf.subject, ''), coalesce(tf.contact, ''),
           CASE WHEN json_extract(t.meta, '$.anonymized_at') IS NOT NULL THEN ''
                ELSE coalesce((SELECT group_concat(m.text, char(10)) FROM messages m WHERE m.ticket_id = t.id), '')
           END
    FROM tickets t LEFT JOIN ticket_fts tf ON tf.rowid = t.number
    ORDER BY t.number;
INSERT INTO search_fts (search_fts) VALUES ('optimize');
DROP TABLE ticket_fts;
DROP TABLE message_fts;
