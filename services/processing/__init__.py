"""Processing: folds each dossier's events into its state, due date and timeliness, kept in MongoDB."""
