"""One study's machinery: its spec, trial record, storage, set-up, and the objective that trains a trial."""
