"""`xsearch run`: the loop that runs a study's trials, its supervised workers and its progress display."""
