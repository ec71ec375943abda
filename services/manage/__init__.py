"""Operator commands: apply the schema and topics, rebuild read models from the run log."""
