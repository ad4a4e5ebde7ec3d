"""optuna-dashboard integration: serves a study's storage with xsearch's figures attached."""

from dashboards.server import is_loopback, serve_dashboard

__all__ = ["is_loopback", "serve_dashboard"]
