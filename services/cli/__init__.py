"""`icp`: the command line of the ingestion control plane (typer + rich over the HTTP API)."""
