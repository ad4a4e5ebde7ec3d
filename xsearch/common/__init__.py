"""Foundation shared by every layer: atomic file writes, checksums, timings, and the TOML files
that ship with xsearch."""
