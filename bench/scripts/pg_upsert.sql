\set n random(1, 2000000000)
INSERT INTO records AS r (namespace, domain, entity, key, value, version)
VALUES ('pgbench', 'misc', :entity, 'c' || :client_id || '-' || :n,
        '{"position":"long","priceOpen":42000.5,"note":"bench"}'::jsonb, 1)
ON CONFLICT (namespace, domain, entity, key) DO UPDATE
SET value = EXCLUDED.value, version = r.version + 1, updated_at = now()
RETURNING version, updated_at;
