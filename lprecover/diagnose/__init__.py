"""``lprecover diagnose``: where pruning breaks reasoning, which criteria see it, and whether the damage is in
thinking or in answering (docs/diagnose.md)."""
