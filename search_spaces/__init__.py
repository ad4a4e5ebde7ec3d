"""Search-space TOML files shipped with xsearch (importable so that installed copies find them)."""
