-- The search index in parts: rowid = ticket number << 20 | part (see inbox/store/search_index.py). A ticket's row
-- becomes its part 0, whole; its later messages join that part until it is about 8,000 characters long and then
-- start new parts, so that a message never rewrites more than one bounded row. Same tokenizer, prefixes and detail.
CREATE VIRTUAL TABLE search_parts USING fts5(
    subject, contact, body,
    tokenize = 'unicode61 remove_diacritics 2', prefix = '1 2 3 4 5 6 7 8 9 10 11 12', detail = none
);
INSERT INTO search_parts (rowid, subject, contact, body)
    SELECT rowid << 20, subject, contact, body FROM search_fts ORDER BY rowid;
DROP TABLE search_fts;
ALTER TABLE search_parts RENAME TO search_fts;
INSERT INTO search_fts (search_fts) VALUES ('optimize');
