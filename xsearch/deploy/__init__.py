"""Where a model runs after the search: deployment formats and their runtimes, latency targets, the latency server
and its client, and a model exported as a file with its card."""
