"""The log store: the DuckDB log and FLAC archive, written by one thread (``writer``),
read by any process (``reader``, through ``control``'s socket while a recorder runs), and
carried as bundles and Parquet. docs/log.md describes the files; docs/architecture.md what
may import what."""
