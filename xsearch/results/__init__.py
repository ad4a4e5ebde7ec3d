"""What a study produced: the Pareto front, tables, figures, reports and exported models."""
