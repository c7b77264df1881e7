"""CrossGuard policy pack; rules.py is shared with `drctl posture`."""
