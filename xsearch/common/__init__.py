"""Foundation shared by every layer: atomic file writes and the TOML files that ship with xsearch."""
