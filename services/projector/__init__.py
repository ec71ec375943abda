"""The projector: applies connector reports to the run log and its read models."""
