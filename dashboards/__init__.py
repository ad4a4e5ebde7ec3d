"""optuna-dashboard integration: serves a study's storage with xsearch's figures attached."""
