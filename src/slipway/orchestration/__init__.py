"""Talking to a Prefect API from outside a flow: trigger a deployment, wait, read its release summary."""
