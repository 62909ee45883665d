"""The pipeline: a request's steps planned, run, retried and swept (services), what each step does (steps), Lanzuan's own data sources and their receipts (datasources), reading steps (selectors)."""
