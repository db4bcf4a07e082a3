"""The case loop (发现-上报-处置-反馈) as pure rules: steps, deadlines, escalation."""
