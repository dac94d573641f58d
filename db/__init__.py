"""Storage: SQL migrations, the batched sink, and the read queries. psycopg lives only here."""
