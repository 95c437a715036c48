"""Monitoring: live inputs and predictions against the champion's training reference, live quality, retrain triggers."""
