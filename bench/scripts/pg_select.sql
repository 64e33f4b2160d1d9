\set i random(0, :keys - 1)
SELECT value, version, updated_at FROM records
WHERE namespace = 'bench' AND domain = 'misc' AND entity = :entity AND key = 'k' || :i;
